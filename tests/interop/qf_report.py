"""qf_report.py - the pass/fail tally every interop checker prints (standard library only, so
a checker in a venv without numpy, such as llama.cpp's, can use it too).

One line per failed check ("FAIL [prefix: ]what (detail)"), notes indented under them, and a
closing "N passed, N failed" line that the shell drivers add up.
"""


class Report:
    def __init__(self, prefix=None):
        self.prefix = prefix
        self.passed = 0
        self.failed = 0

    def _label(self, text):
        return f"{self.prefix}: {text}" if self.prefix else text

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
        else:
            self.failed += 1
            print("FAIL " + self._label(what) + (f" ({detail})" if detail else ""), flush=True)
        return ok

    def note(self, text):
        print("     " + self._label(text), flush=True)

    def finish(self):
        print(f"{self.passed} passed, {self.failed} failed", flush=True)
        return 1 if self.failed else 0
