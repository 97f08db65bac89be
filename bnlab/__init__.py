"""Shared code of the BatchNorm course.

Used by the book (figures, demonstrations), the learner notebooks (visible checks) and the
grader (reference layers). It never contains the solutions of the exercises.
"""

__version__ = "0.1.0"
