"""What the command line (course.py) runs: installing, the lessons' layout, notebooks headless,
slide decks and a headless browser, stand-in models, the MNIST subset and the lessons' photos, and
the GPU check. It imports ``utils``, never the other way round, and nothing here imports ``tests``.
Notebooks import only ``tools.bootstrap``, in their set-up cell on Colab and Kaggle, before the
lessons' libraries are installed (it needs only the standard library)."""
