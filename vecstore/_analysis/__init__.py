"""Snapshot analyses the stores themselves offer (``store.recommend``,
``store.find_duplicates``), below the facades; the estimators of the
``vecstore.analytics`` extra build on the same snapshot reader (``source``).
numpy only at import; faiss/scikit-learn are imported when an analysis runs."""
