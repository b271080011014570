"""``ctloop backtest``: replay a labelled stream under retraining policies and compare quality and cost."""
