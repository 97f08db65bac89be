"""Feedback preprocessors of the course grader (loaded by nbgrader_config.py).

nbgrader's ClearHiddenTests removes the hidden tests from a cell's *source*, but a failing cell's
traceback still quotes them: IPython prints the lines around the failing one, hidden ones
included. ScrubHiddenTracebacks runs before ClearHiddenTests and reduces the error output of every
cell that holds hidden tests to the error's own message, which the checks write for learners.
"""

from __future__ import annotations

import re

from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class ScrubHiddenTracebacks(NbGraderPreprocessor):
    begin = Unicode("BEGIN HIDDEN TESTS").tag(config=True)

    def preprocess_cell(self, cell, resources, cell_index):
        if cell.cell_type != "code" or self.begin not in cell.source:
            return cell, resources
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                message = _ANSI.sub(
                    "", f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
                )
                output["traceback"] = [message, "(the test's code is not shown in feedback)"]
        return cell, resources
