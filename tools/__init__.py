"""Tools the command line (course.py) uses: installing, stand-in models, the MNIST subset and the
GPU check. It imports ``utils``, never the other way round. Notebooks import only
``tools.bootstrap``, in their set-up cell on Colab and Kaggle, before the lessons' libraries are
installed (it needs only the standard library)."""
