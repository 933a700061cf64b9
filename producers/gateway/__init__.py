"""The QRMI-compatible gateway: Warden's HTTP API (what QRMI's ``PasqalLocal`` resource speaks)
on top of qsched, so a site's Slurm/QRMI stack drives qsched unchanged.

Theory of operation. The gateway is an edge, not a second scheduler: it holds no state of its
own. Every request proves its sender with a fresh MUNGE credential (`identity`), and becomes
AMQP messages of that user (`link`: the gateway's broker user acts for them, which the owner
allows only for the policy's ``gateway_users``): a session is opened and closed by the owner,
a job is a normal qsched job of the user, accepted and numbered by the owner before the HTTP
answer, and every read asks the owner. `shapes` holds the JSON the qrmi client parses,
`service` what each endpoint does, `app` the HTTP routes, `cli` ``qsched gateway serve``.
"""
