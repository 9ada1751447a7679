"""The reliability suite (issue 12): one case per bad input or fault, each asserting the exit
code, the one-line message (file, line or field named; no traceback) and that nothing outside the
command's own output changed."""
