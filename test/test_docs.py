"""The user docs stay true to the code: README.md, CONTRIBUTING.md, model/README.md and
every docs/*.md (pages added later are covered by the glob).

- Relative links resolve: the file or folder exists, and a `#anchor` names a heading of
  the target page (GitHub's slugs).
- Every `textdepth <command> ...` (also `.venv/bin/textdepth`, `ros2 run textdepth_ros
  textdepth`, `python -m textdepth_ros.cli`) names a real subcommand and only options its
  real argparse parser declares (read from textdepth_ros.cli, not listed here); a command
  in a bash block must parse as a whole (types, choices, required options).
- Every `ros2 launch textdepth_ros <file> a:=b` names a launch file in launch/ and launch
  arguments it declares (its DeclareLaunchArgument names, read with ast: no launch import);
  `ros2 run textdepth_ros <exe>` names a console script of setup.py; `make <target>` a
  Makefile target.
- Every repository path a command in a bash block reads exists in the repository, or is
  written by an earlier command on the same page (a `--out`, `--json`, `--record` or
  `--onnx` value; `results_file:=`). Files outside the repository are written absolute,
  `~/...` or `$VAR/...` and are not checked.
- README.md stays at README_MAX_LINES lines or fewer.

Each problem is reported as `file:line: what`, all of them at once.
"""
import argparse
import ast
import contextlib
import importlib
import io
import re
import shlex
from functools import lru_cache
from pathlib import Path

from textdepth_ros.cli import COMMANDS, build_parser

REPO = Path(__file__).resolve().parent.parent
README_MAX_LINES = 260
PAGES = [REPO / "README.md", REPO / "CONTRIBUTING.md", REPO / "model" / "README.md",
         *sorted((REPO / "docs").glob("*.md"))]
SHELL_BLOCKS = {"", "bash", "sh", "shell", "console"}
# Options and node parameters whose value is a file the command writes, not reads.
OUTPUTS = {"--out", "--json", "--record", "--onnx", "results_file"}
FENCE = re.compile(r"^\s*(```|~~~)\s*([\w+-]*)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


def rel(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


class Page:
    """A markdown page split into prose (fenced blocks blanked, line numbers kept) and
    its fenced blocks as (first line number, language, lines)."""

    def __init__(self, path: Path):
        self.path, self.name = path, rel(path)
        self.lines = path.read_text().splitlines()
        self.blocks, prose, block = [], [], None
        for number, line in enumerate(self.lines, 1):
            fence = FENCE.match(line)
            if block is None and fence:
                block = (number + 1, fence.group(2).lower(), [])
                prose.append("")
            elif block is not None and line.strip() in ("```", "~~~"):
                self.blocks.append(block)
                block = None
                prose.append("")
            elif block is not None:
                block[2].append(line)
                prose.append("")
            else:
                prose.append(line)
        self.prose = "\n".join(prose)

    def line_of(self, offset: int) -> int:
        return self.prose.count("\n", 0, offset) + 1

    def commands(self):
        """(line, tokens, whole) for each simple command: from shell blocks (whole=True) and
        from inline code spans that start with a project command (whole=False)."""
        found = []
        for first, language, lines in self.blocks:
            if language not in SHELL_BLOCKS:
                continue
            joined, start = "", None
            for offset, line in enumerate(lines):
                start = first + offset if start is None else start
                if line.rstrip().endswith("\\"):
                    joined += line.rstrip()[:-1] + " "
                    continue
                for tokens in split_commands(joined + line):
                    found.append((start, tokens, True))
                joined, start = "", None
        for span in re.finditer(r"`([^`]+)`", self.prose):
            text = " ".join(span.group(1).split())
            for tokens in split_commands(text):
                if project_program(tokens):
                    found.append((self.line_of(span.start()), tokens, False))
        return sorted(found, key=lambda item: item[0])

    def slugs(self) -> set:
        seen, slugs = {}, set()
        for line in self.prose.splitlines():
            heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
            if not heading:
                continue
            text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1))
            slug = re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            slugs.add(slug if count == 0 else f"{slug}-{count}")
        return slugs


def split_commands(text: str):
    """Shell words of each simple command in a line (comments dropped; split at ; && | ||)."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lexer.whitespace_split, lexer.commenters = True, "#"
    try:
        words = list(lexer)
    except ValueError:  # an unbalanced quote: prose, not a command
        return []
    commands, current = [], []
    for word in words:
        if word and set(word) <= set(";&|"):
            commands.append(current)
            current = []
        else:
            current.append(word)
    commands.append(current)
    return [drop_assignments(c) for c in commands if drop_assignments(c)]


def drop_assignments(tokens):
    index = 0
    while index < len(tokens) and ENV_ASSIGNMENT.match(tokens[index]):
        index += 1
    return tokens[index:]


def project_program(tokens):
    """('textdepth', args) / ('launch', args) / ('run', args) / None for a command line."""
    if not tokens:
        return None
    program = Path(tokens[0]).name
    if program == "textdepth":
        return "textdepth", tokens[1:]
    if "-m" in tokens and tokens.index("-m") + 1 < len(tokens) and tokens[tokens.index("-m") + 1] == "textdepth_ros.cli":
        return "textdepth", tokens[tokens.index("-m") + 2:]
    if program == "ros2" and tokens[1:3] in (["launch", "textdepth_ros"], ["run", "textdepth_ros"]):
        if tokens[1] == "run" and len(tokens) > 3 and tokens[3] == "textdepth":
            return "textdepth", tokens[4:]
        return tokens[1], tokens[3:]
    if program in console_scripts() and program != "textdepth":
        return "run", tokens
    return None


@lru_cache(maxsize=None)
def subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser(command)
    choices = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return choices[command]


def is_declare(node) -> bool:
    return isinstance(node, ast.Call) and getattr(node.func, "id", "") == "DeclareLaunchArgument" and bool(node.args)


@lru_cache(maxsize=None)
def launch_arguments(launch_file) -> frozenset:
    """Names of the launch file's DeclareLaunchArgument calls: string literals, and those
    declared in a comprehension over a table the launch file imports from textdepth_ros
    (e.g. `for name in TABLE` / `TABLE.items()`), read from that module. No launch import."""
    tree = ast.parse((REPO / "launch" / launch_file).read_text())
    imported = {alias.asname or alias.name: (node.module, alias.name) for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("textdepth_ros")
                for alias in node.names}
    names = {node.args[0].value for node in ast.walk(tree) if is_declare(node) and isinstance(node.args[0], ast.Constant)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.ListComp, ast.GeneratorExp)) and is_declare(node.elt):
            source = node.generators[0].iter
            if isinstance(source, ast.Call) and isinstance(source.func, ast.Attribute):  # TABLE.items()
                source = source.func.value
            assert isinstance(source, ast.Name) and source.id in imported, (
                f"{launch_file}: launch arguments declared from {ast.unparse(source)}, which this test cannot read")
            module, attribute = imported[source.id]
            names.update(getattr(importlib.import_module(module), attribute))
    return frozenset(names)


@lru_cache(maxsize=None)
def console_scripts() -> frozenset:
    tree = ast.parse((REPO / "setup.py").read_text())
    scripts = next(node for node in ast.walk(tree) if isinstance(node, ast.Dict)
                   and any(isinstance(k, ast.Constant) and k.value == "console_scripts" for k in node.keys))
    entries = ast.literal_eval(scripts.values[[k.value for k in scripts.keys].index("console_scripts")])
    return frozenset(entry.split("=")[0].strip() for entry in entries)


@lru_cache(maxsize=None)
def make_targets() -> frozenset:
    return frozenset(re.findall(r"^([\w.-]+):", (REPO / "Makefile").read_text(), re.MULTILINE))


def repo_path(value: str):
    """The repository-relative path a word names, or None (not a path, or outside the repo)."""
    value = value.removeprefix("$PWD/").removeprefix("./")
    if not value or value.startswith(("/", "~", "$", "-", "<", ".venv/")) or "://" in value:
        return None
    if not re.fullmatch(r"[\w.\-/*]+", value) or ".." in value.split("/"):
        return None
    if "/" not in value and not re.search(r"\.[A-Za-z][A-Za-z0-9]*$", value):
        return None
    return value


def option_values(parser: argparse.ArgumentParser, args):
    """(option or None for a positional, value) pairs, split as the parser's nargs say."""
    actions = {s: a for a in parser._actions for s in a.option_strings}
    pairs, index = [], 0
    while index < len(args):
        word = args[index]
        name, _, inline = word.partition("=")
        action = actions.get(name) if word.startswith("-") else None
        if action is None:
            pairs.append((None, word))
            index += 1
            continue
        if inline:
            pairs.append((name, inline))
            index += 1
            continue
        count = action.nargs if isinstance(action.nargs, int) else (0 if action.nargs == 0 else 1)
        if action.nargs in ("*", "+"):
            count = next((i for i, w in enumerate(args[index + 1:]) if w.startswith("-")), len(args) - index - 1)
        pairs.extend((name, value) for value in args[index + 1:index + 1 + count])
        index += 1 + count
    return pairs


def check_textdepth(where, args, whole, problems):
    """Problems of one textdepth command line; returns its (option, value) pairs."""
    if not args or args[0] in ("-h", "--help") or args[0].startswith("<"):
        return []
    command = args[0]
    if command not in COMMANDS:
        problems.append(f"{where}: `textdepth {command}` is not a subcommand (they are: {', '.join(COMMANDS)})")
        return []
    parser = subparser(command)
    known = {s for a in parser._actions for s in a.option_strings}
    for word in args[1:]:
        name = word.partition("=")[0]
        if word.startswith("-") and not word.startswith("-<") and name not in known and not re.fullmatch(r"-[\d.]+", word):
            problems.append(f"{where}: `textdepth {command}` has no option {name} (it has: {', '.join(sorted(known))})")
    if whole:
        stderr = io.StringIO()
        try:
            with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
                build_parser(command).parse_args(args)
        except SystemExit as exit_:
            if exit_.code:
                problems.append(f"{where}: `textdepth {' '.join(args)}` does not parse: {stderr.getvalue().strip().splitlines()[-1]}")
    return option_values(parser, args[1:])


def key_values(args):
    """(key, value) of each `key:=value` word and of `--params-file FILE` in ROS arguments."""
    pairs = []
    for index, word in enumerate(args):
        if ":=" in word:
            key, _, value = word.partition(":=")
            pairs.append((key, value))
        elif word == "--params-file" and index + 1 < len(args):
            pairs.append(("--params-file", args[index + 1]))
    return pairs


def check_page(page: Page, problems: list) -> None:
    written = set()

    def exists(path: str) -> bool:
        return bool(list(REPO.glob(path))) or any(path == w or path.startswith(w.rstrip("/") + "/") for w in written)

    def reads(where, pairs):
        for key, value in pairs:
            path = repo_path(value)
            if path is None:
                continue
            if key in OUTPUTS:
                written.add(path)
            elif not exists(path):
                problems.append(f"{where}: {path} is read but is neither in the repository nor written earlier on "
                                f"this page (write files outside the repository as absolute or ~/ paths)")

    for line, tokens, whole in page.commands():
        where = f"{page.name}:{line}"
        program = project_program(tokens)
        if program is None:
            if whole and Path(tokens[0]).name == "make":
                for target in tokens[1:]:
                    if not target.startswith("-") and "=" not in target and target not in make_targets():
                        problems.append(f"{where}: `make {target}`: no such Makefile target")
            if whole and Path(tokens[0]).name in ("bash", "sh") and len(tokens) > 1 and repo_path(tokens[1]):
                reads(where, [(None, tokens[1])])
            if whole and Path(tokens[0]).name.startswith("python") and len(tokens) > 1 and tokens[1].endswith(".py"):
                reads(where, [(None, tokens[1])])
            if whole and tokens[1:3] == ["-m", "pytest"]:
                reads(where, [(None, w) for w in tokens[3:] if not w.startswith("-")])
            continue
        kind, args = program
        if kind == "textdepth":
            pairs = check_textdepth(where, args, whole, problems)
        elif kind == "launch":
            if not args:
                continue
            if not (REPO / "launch" / args[0]).is_file():
                problems.append(f"{where}: launch file {args[0]} is not in launch/")
                continue
            pairs = key_values(args[1:])
            for key, _ in pairs:
                if not key.startswith("<") and key not in launch_arguments(args[0]):
                    problems.append(f"{where}: {args[0]} declares no launch argument '{key}' "
                                    f"(it has: {', '.join(sorted(launch_arguments(args[0])))})")
        else:  # ros2 run textdepth_ros <exe>, or the executable itself
            executable = Path(args[0]).name if args else ""
            if executable not in console_scripts():
                problems.append(f"{where}: textdepth_ros has no executable '{executable}' "
                                f"(setup.py's console_scripts: {', '.join(sorted(console_scripts()))})")
            pairs = key_values(args[1:])
        if whole or kind == "textdepth":
            reads(where, pairs)


def test_relative_links_resolve():
    problems = []
    for path in PAGES:
        page = Page(path)
        for match in LINK.finditer(page.prose):
            target = match.group(1)
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            where = f"{page.name}:{page.line_of(match.start())}"
            if not linked.exists():
                problems.append(f"{where}: link target {file} does not exist")
            elif anchor and linked.suffix == ".md" and anchor not in Page(linked).slugs():
                problems.append(f"{where}: {rel(linked)} has no heading with the anchor #{anchor}")
    assert not problems, "\n".join(problems)


def test_commands_name_real_subcommands_options_arguments_and_files():
    problems = []
    for path in PAGES:
        check_page(Page(path), problems)
    assert not problems, "\n".join(problems)


def test_readme_is_short():
    lines = len((REPO / "README.md").read_text().splitlines())
    assert lines <= README_MAX_LINES, (f"README.md has {lines} lines (at most {README_MAX_LINES}): move details "
                                       f"into docs/ and link them")


def test_the_checks_catch_what_they_are_for(tmp_path):
    """The checker itself: a wrong subcommand, option, launch argument, executable, missing
    file, a file read before it is written and a broken anchor are all reported."""
    bad = tmp_path / "bad.md"
    bad.write_text("# Title\n\n[ok](#title) [broken](#nope) [gone](missing.md)\n\n```bash\n"
                   "textdepth fly --x 1\n"
                   "textdepth predict --image photo.jpg --out out/a.npy --wings\n"
                   "ros2 launch textdepth_ros depth.launch.py camera:=/c\n"
                   "ros2 run textdepth_ros no_such_node\n"
                   "textdepth eval --checkpoint out/m.safetensors --data-root d --test-list d/l.txt\n"
                   "textdepth make-dataset --out out/m.safetensors\n"
                   "textdepth eval --checkpoint out/m.safetensors --data-root /d --test-list /d/l.txt\n"
                   "```\n\nInline: `textdepth train --variant full`.\n")
    page, problems = Page(bad), []
    check_page(page, problems)
    text = "\n".join(problems)
    for expected in ("bad.md:6: `textdepth fly` is not a subcommand", "has no option --wings",
                     "photo.jpg is read", "declares no launch argument 'camera'", "no executable 'no_such_node'",
                     "bad.md:10: out/m.safetensors is read", "`textdepth train` has no option --variant"):
        assert expected in text, text
    assert "bad.md:12:" not in text, text  # written by line 11 first, and /d is outside the repository
    assert page.slugs() == {"title"}


def test_launch_arguments_declared_from_an_imported_table_are_read(tmp_path):
    launch = tmp_path / "table.launch.py"
    launch.write_text("from launch.actions import DeclareLaunchArgument\n"
                      "from textdepth_ros.cli import COMMANDS\n"
                      "def generate_launch_description():\n"
                      "    return [DeclareLaunchArgument('namespace')] + [\n"
                      "        DeclareLaunchArgument(name) for name, _ in COMMANDS.items()]\n")
    assert launch_arguments(launch) == {"namespace", *COMMANDS}
