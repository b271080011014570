"""The closed-loop demo: drift → alert → retrain → gate → promote → hot-swap, on one machine."""

from ctloop.demo.loop import run_demo
from ctloop.demo.record import DemoResult
from ctloop.demo.scenario import DemoSettings

__all__ = ["DemoResult", "DemoSettings", "run_demo"]
