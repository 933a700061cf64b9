"""The QPU owner side of qsched, in rooms (docs/design.md, "Layout"):

- `core/`: the pure scheduler: state, step, the command table, the order index, policy math;
- `owner/`: the owner process around it: lease, intake, the shell, effects, metrics (`qsched owner`);
- `backends/`: where runs happen: Pulser emulator, Pasqal QPU API, QRMI, synthetic;
- `plugins/`: the site plugin interface and its loading;
- `tools/`: operator tools that read the log or a policy: events/history, simulate, policy check, demo.

`errors.py` is the error base every room shares. Which room may import which is checked by
`tests/unit/test_rooms.py`.
"""
