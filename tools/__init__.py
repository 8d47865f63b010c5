"""Tools the command line (course.py) uses: stand-in models and the GPU check. Notebooks never
import this package; it imports ``utils``, never the other way round."""
