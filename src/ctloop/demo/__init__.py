"""The closed-loop demo: drift → alert → retrain → gate → promote → hot-swap, on one machine."""

from ctloop.demo.loop import DemoResult, run_demo
from ctloop.demo.scenario import DemoSettings

__all__ = ["DemoResult", "DemoSettings", "run_demo"]
