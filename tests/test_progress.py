"""Feedback while a command runs: plain lines with elapsed time and what is left when the
output is not a terminal."""

import io

from simulator.progress import PlainLines, clock, progress


def test_plain_lines_say_elapsed_and_left_at_most_every_few_seconds():
    t = [0.0]
    out = io.StringIO()
    p = PlainLines(100, "study demo", "months", out, every=10.0, now=lambda: t[0])
    for _ in range(4):
        t[0] += 3.0
        p.advance(5)  # 12 s for 20 months: one line, at 12 s
    t[0] += 1.0
    p.advance(80)  # done: always said
    lines = out.getvalue().splitlines()
    assert lines == ["study demo: 20/100 months (20%), 0:12 elapsed, about 0:48 left",
                     "study demo: 100/100 months (100%), 0:13 elapsed"]


def test_clock():
    assert clock(5) == "0:05" and clock(125) == "2:05" and clock(3725) == "1:02:05"


def test_not_a_terminal_gets_plain_lines():
    out = io.StringIO()
    with progress(3, "run", "replications", stream=out) as tick:
        for _ in range(3):
            tick(1)
    assert out.getvalue().splitlines()[-1].startswith("run: 3/3 replications (100%)")


def test_steps_are_plain_lines_once_a_step_lasts_two_seconds():
    """A step still running two seconds after it started is shown (and every step after it);
    a command that ends or fails sooner prints nothing (bad input stays one line)."""
    from simulator.progress import PlainSteps, steps

    t = [0.0]
    fired = []
    out = io.StringIO()
    p = PlainSteps("calibrate", out, now=lambda: t[0], timer=lambda delay, fn: fired.append(fn) or fn)
    p.step("reading the log")
    t[0] += 1.0
    p.step("monthly panel")           # the first step ended within 2 s: its timer is dropped
    t[0] += 30.0
    fired[-1]()                       # the panel is still running 2 s after it started
    p.step("fitting the lapse-and-return model")
    t[0] += 44.0
    p.done()
    assert out.getvalue().splitlines() == ["calibrate: monthly panel (0:01 elapsed)",
                                           "calibrate: fitting the lapse-and-return model (0:31 elapsed)",
                                           "calibrate: done in 1:15"]
    out = io.StringIO()
    with steps("calibrate", stream=out) as step:
        step("quick")
    assert out.getvalue() == ""
