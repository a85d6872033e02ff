"""T-MOR: a transferable skeleton motion representation, trained against text (and video).

``model.py`` (the towers), ``inputs.py`` (what the skeleton tower sees), ``loss.py`` (InfoNCE
with near-duplicates masked), ``data.py`` + ``pretrain.py`` (``kinemic tmor pretrain``),
``encoder.py`` (encoder folders, ``load_tmor``, embedding), ``metrics.py`` and the tasks:
``retrieve.py``, ``classify.py``, ``detect.py``, ``filter.py`` (the kinematic filter for
KineMIC's soft positives), ``evaluator.py`` (text-to-motion metrics in T-MOR space).
"""
