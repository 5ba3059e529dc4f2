"""What a terminal shows for some output: a tiny emulator of the control sequences tqdm and logging write.

``\\r`` returns to the line's start, ``\\n`` moves down (a pty's ONLCR turns it into ``\\r\\n``; both are handled),
``ESC[nA`` moves up, ``ESC[K`` clears to the line's end; any other escape sequence is dropped. Characters overwrite
what is under the cursor, as on a screen. The result is every line ever shown, top to bottom (scrollback
included), trailing spaces removed.
"""

from __future__ import annotations

import re

_ESCAPE = re.compile(r"\x1b\[(\d*)([A-Za-z])")


def render(text: str) -> list[str]:
    lines: list[list[str]] = [[]]
    row = col = 0
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\x1b":
            match = _ESCAPE.match(text, i)
            if match:
                count, code = int(match.group(1) or 1), match.group(2)
                if code == "A":
                    row = max(0, row - count)
                elif code == "K":
                    del lines[row][col:]
                i = match.end()
                continue
        if char == "\r":
            col = 0
        elif char == "\n":
            row, col = row + 1, 0
            while len(lines) <= row:
                lines.append([])
        else:
            line = lines[row]
            line.extend(" " * (col - len(line) + 1) if col >= len(line) else "")
            line[col] = char
            col += 1
        i += 1
    return ["".join(line).rstrip() for line in lines]
