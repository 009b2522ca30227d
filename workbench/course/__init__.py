"""The graded course (notebooks/course/): check helpers the exercises call, the student
release (`build_release`, nbgrader's preprocessors) and grading (`grade_notebook`,
nbgrader's scoring rule). Imports no widget code."""
from .build import build_release, release_notebook
from .grade import ExerciseScore, Grade, grade_notebook
from .notebooks import SOURCE_DIR, course_notebooks

__all__ = ["SOURCE_DIR", "ExerciseScore", "Grade", "build_release", "course_notebooks", "grade_notebook",
           "release_notebook"]
