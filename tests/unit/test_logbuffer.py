from r1console.core.logbuffer import LogBuffer, next_match


def test_lines_partial_and_carriage_returns():
    buf = LogBuffer()
    buf.feed("one\ntw")
    assert buf.lines() == ["one", "tw"]
    buf.feed("o\nLoading: 1/163\rLoading: 2/163\r")
    assert buf.lines() == ["one", "two", "Loading: 2/163"]
    buf.feed("Loading: 3/163\n")
    assert buf.lines() == ["one", "two", "Loading: 3/163"]


def test_crlf_and_ansi():
    buf = LogBuffer()
    buf.feed("\x1b[1;36m(APIServer pid=1)\x1b[0;0m INFO hi\r\nnext\r\n")
    assert buf.lines() == ["(APIServer pid=1) INFO hi", "next"]


def test_bounded_with_absolute_numbers():
    buf = LogBuffer(max_lines=3)
    for i in range(10):
        buf.feed(f"line {i}\n")
    assert buf.lines() == ["line 7", "line 8", "line 9"]
    assert buf.first_line == 7 and buf.end == 10
    assert buf.line(8) == "line 8" and buf.line(2) is None
    assert buf.search("line [89]").matches == (8, 9)


def test_endless_line_is_capped():
    buf = LogBuffer()
    buf.feed("x" * 50_000)
    assert len(buf.lines()[0]) == 10_000


def test_search_filter_and_navigation():
    buf = LogBuffer()
    buf.feed("INFO a\nWARNING b\nINFO c\nERROR d\n")
    result = buf.search("info")
    assert result.count == 2 and result.matches == (0, 2)
    assert next_match(result, 0) == 2 and next_match(result, 2) == 0
    assert next_match(result, 2, forward=False) == 0 and next_match(result, 0, forward=False) == 2
    assert buf.filtered("WARN|ERR") == [1, 3]
    assert buf.filtered("") == [0, 1, 2, 3]
    assert buf.search("[unclosed").count == 0  # not a regex: searched literally
    assert next_match(buf.search("zzz"), 0) is None


def test_progress_bar_updates_collapse_to_one_line():
    buf = LogBuffer()
    buf.feed("INFO start\n")
    for n in range(0, 164):
        buf.feed(f"\rLoading safetensors checkpoint shards: {100 * n // 163:3d}% Completed | {n}/163 [00:01<00:02]\n")
    buf.feed("INFO loaded\n")
    assert buf.lines() == ["INFO start",
                           "Loading safetensors checkpoint shards: 100% Completed | 163/163 [00:01<00:02]",
                           "INFO loaded"]
    buf.feed("Other bar:  50% Completed | 1/2 [00:01<00:01]\n")  # a different bar is a new line
    assert len(buf.lines()) == 4


def test_long_lines_are_stored_shortened_with_their_length():
    buf = LogBuffer(max_line_chars=100)
    buf.feed("p" * 250 + "\nshort\n")
    first, second = buf.lines()
    assert first == "p" * 100 + " …[150 more characters]" and second == "short"
    assert buf.lines_cut == 1


def test_a_line_longer_than_the_partial_window_still_reports_its_whole_length():
    buf = LogBuffer(max_line_chars=100)
    for _ in range(10):
        buf.feed("q" * 5_000)             # 50,000 characters, never more than 10,000 kept
        assert buf.chars_stored <= 10_000 + 200
    buf.feed("\n")
    assert buf.lines() == ["q" * 100 + " …[49900 more characters]"]


def test_total_characters_are_bounded_oldest_lines_dropped():
    buf = LogBuffer(max_lines=1_000_000, max_line_chars=8 * 1024, max_chars=256 * 1024)
    line = "L" * 60_000 + "\n"            # the audit's case: 60 kB lines (vLLM logging prompts)
    for _ in range(300):                   # 18 MB fed
        buf.feed(line)
    assert buf.chars_stored <= 256 * 1024
    assert buf.end == 300 and buf.first_line == buf.end - len(buf.lines())   # numbering stays absolute
    assert buf.line(buf.end - 1).endswith("more characters]")


def test_progress_bar_rewrites_keep_the_count_right():
    buf = LogBuffer(max_chars=10_000)
    for i in range(1000):
        buf.feed(f"Loading safetensors checkpoint shards: {i % 100:3d}% Completed | {i}/163\r\n")
    assert len(buf.lines()) == 1 and buf.chars_stored == len(buf.lines()[0])
