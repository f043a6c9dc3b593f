"""A study's definition and storage: config, designs, dataset views, the study directory, results."""
