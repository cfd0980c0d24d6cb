"""The process around the pipeline: the consumer loop and rebalances, the calibration
worker, wiring from configuration, logging, and the configuration dry run."""
