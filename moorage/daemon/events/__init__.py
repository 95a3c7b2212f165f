"""Engine events: what happened to containers, images, volumes and networks."""
