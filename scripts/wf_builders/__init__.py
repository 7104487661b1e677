"""One module per node family; each defines ``BUILDERS = {workflow name: build(object_info) -> Workflow}``."""
