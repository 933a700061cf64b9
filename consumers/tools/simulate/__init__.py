"""`qsched simulate`: the recorded history re-run through the owner's pure `step` under another
policy, on a modelled QPU whose run times come from the recorded runs.

`history` reads the log into the simulator's inputs and run model, `engine` drives `step` and
`apply` as the owner's shell does, `metrics` measures a history (recorded or simulated) the same
way, `cli` prints the two side by side.
"""
