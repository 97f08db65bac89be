"""nbgrader configuration of the BatchNorm course.

nbgrader reads this file from its working directory: the course CLI (`bn-course`) runs nbgrader
in this folder. The course root (release/, submitted/, autograded/, feedback/, gradebook.db) is
computed from this file's own location, `<repo>/_course`, unless BNLAB_COURSE_ROOT names another.
Student data is never committed (.gitignore).
"""

import os
from pathlib import Path

c = get_config()  # noqa: F821 (provided by traitlets when it loads this file)

REPO = Path(__file__).resolve().parent.parent
ROOT = Path(os.environ.get("BNLAB_COURSE_ROOT") or REPO / "_course").resolve()

c.CourseDirectory.course_id = "batchnorm"
c.CourseDirectory.root = str(ROOT)
# `source/` inside the course root is generated from the text sources in solutions/.
c.CourseDirectory.source_directory = "source"
c.CourseDirectory.release_directory = "release"
c.CourseDirectory.db_url = f"sqlite:///{ROOT / 'gradebook.db'}"
# The exchange of release_assignment / fetch_assignment / submit / collect: on one machine inside
# the course root; on a JupyterHub, a folder every learner can write (BNLAB_EXCHANGE, the same
# path as the learners' own nbgrader_config.py; README, "A JupyterHub course with nbgrader").
c.Exchange.root = os.environ.get("BNLAB_EXCHANGE") or str(ROOT / "exchange")

c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Learner notebooks carry no outputs; generated notebooks are validated before release.
c.GenerateAssignment.create_assignment = True

# Framework imports in test cells are silenced by bnlab.core.frameworks; this pattern is a
# second line of defence against TensorFlow / absl log lines, which would otherwise score a
# correct cell 0.
c.IgnorePattern.enabled = True
c.IgnorePattern.pattern = (
    r"(?m)^(?:[IWE]\d{4} \d\d:\d\d|WARNING: All log messages before absl"
    r"|.*cpu_feature_guard|.*oneDNN custom operations)"
)
c.Execute.timeout = 120
c.Execute.interrupt_on_timeout = True

# Pages rendered from learner notebooks (feedback, formgrader) carry no live learner HTML; the
# grader has already escaped it in the autograded notebook, and nbconvert sanitizes again.
c.HTMLExporter.sanitize_html = True

# Feedback returned to learners never contains the hidden tests: not in a cell's source
# (ClearHiddenTests) and not quoted by a traceback (bn_feedback.ScrubHiddenTracebacks).
c.GenerateFeedback.preprocessors = [
    "nbgrader.preprocessors.GetGrades",
    "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    "bn_feedback.ScrubHiddenTracebacks",
    "nbgrader.preprocessors.ClearHiddenTests",
]
