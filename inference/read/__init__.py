"""Reading several digits: numbers, rows and tables of handwritten digits, with any single-digit
model exported by redigits.

    from inference import Classifier
    from inference.read import read_digits
    reading = read_digits(Classifier("model.onnx"), "number.png")
    reading.text          # "2026" (one line of text per line of writing, cells apart by spaces)
    reading.lines[0].digits[0].box, .top, .probability; reading.confidence
    reading.csv()         # the lines as table rows, cells in columns

    python -m inference read model.onnx number.png [--table] [--json]

How (reader.py has the steps): find the ink, group it into lines, take out each line's slant,
cut wide pieces where touching digits may join (cuts.py), let the classifier score every run of
consecutive pieces as a digit and keep the best reading of the whole cell (path.py).
"""
from inference.read.reader import ReadLimits, TooMuchInk, read_digits
from inference.read.result import Cell, Digit, Line, Reading

__all__ = ["read_digits", "ReadLimits", "TooMuchInk", "Reading", "Line", "Cell", "Digit"]
