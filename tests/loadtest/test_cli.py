"""`python -m loadtest` arguments: --sample-rate is the audio's rate, and says so; --rate keeps working; every
command reaches its handler."""

import argparse

import pytest

from loadtest.cli import COMMANDS, build_parser


@pytest.mark.parametrize("flag", ["--sample-rate", "--rate"])
def test_sample_rate_and_its_old_name_set_the_audio_rate(flag):
    assert build_parser().parse_args(["run", "--out", "x", flag, "8000,48000"]).rate == [8000, 48000]
    assert build_parser().parse_args(["bench", flag, "8000"]).rate == 8000


def test_help_says_the_rate_is_the_audio_sample_rate_not_calls_per_second(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--sample-rate HZ, --rate HZ audio sample rate of each call's PCM" in text
    assert "NOT calls per second (see --ramp, --churn-rate)" in text
    assert "exit status: 0 every threshold held" in text


def test_every_command_has_a_handler():
    parser = build_parser()
    (commands,) = (action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    assert set(commands.choices) == set(COMMANDS)
