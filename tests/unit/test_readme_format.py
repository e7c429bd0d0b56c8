"""The README test's reading of code blocks, and its comparison: it can fail."""

from __future__ import annotations

from tests.support.readme import blocks, matches, normalise

SAMPLE = """\
Intro.

<!-- not run: a measurement -->
```sh
edgekv bench quick
```

```console
$ edgekv kv key get k --binding MY_KV --text
hello
$ cat > worker.py <<'EOF'
print("hi")
EOF
$ edgekv up \\
    --detach
node central
```

```python
print("hello", "MISS")
```

It prints:

```text
hello MISS
```
"""


def test_blocks_commands_and_printed_lines_are_read_in_order() -> None:
    sh, console, python, text = blocks(SAMPLE)
    assert sh.not_run == "a measurement" and console.not_run is None
    commands = console.commands()
    assert [c.text for c in commands] == [
        "edgekv kv key get k --binding MY_KV --text",
        "cat > worker.py <<'EOF'\nprint(\"hi\")\nEOF",
        "edgekv up \\\n    --detach",
    ]
    assert [c.printed for c in commands] == [["hello"], [], ["node central"]]
    assert python.printed == ["hello MISS"] and text.language == "text"


def test_what_varies_between_runs_is_ignored_and_nothing_else() -> None:
    assert normalise("ns 0123456789abcdef0123456789abcdef at 127.0.0.1:43929 pid 28134") == (
        "ns <id> at <address> pid <number>"
    )
    assert normalise("hello   HIT    0.045  eu-west") == "hello HIT <number> eu-west"
    assert matches(["hello HIT 0.045"], ["hello HIT 1.5"])
    assert not matches(["hello HIT 0.045"], ["hello MISS 0.045"])
    assert not matches(["revision=2"], ["revision=3"])
    assert not matches(["a", "b"], ["a"])
    assert matches(["a", "...", "z"], ["a", "b", "c", "z"])
    assert not matches(["a", "...", "z"], ["a", "b", "c"])
