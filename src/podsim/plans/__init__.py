"""plans: how work is split over a cluster (parallelism, schedules, precision, recompute),
checked against the model and the cluster it runs on."""
