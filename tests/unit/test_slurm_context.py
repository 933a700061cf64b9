"""The Slurm context of a submitter: environment first, squeue for what the prolog did not set."""

from __future__ import annotations

from producers.slurm import slurm_context


def no_squeue(job_id: str) -> tuple[str | None, str | None]:
    raise AssertionError("squeue must not be asked when the environment has everything")


def test_outside_slurm_there_is_no_context() -> None:
    assert slurm_context({}, no_squeue) is None


def test_the_environment_wins_when_complete() -> None:
    env = {
        "SLURM_JOB_ID": "7",
        "SLURM_PROCID": "1",
        "SLURM_JOB_ACCOUNT": "qphys",
        "SLURM_JOB_END_TIME": "1900000000",
    }
    context = slurm_context(env, no_squeue)
    assert context is not None
    assert (context.job_id, context.rank, context.account) == ("7", 1, "qphys")
    assert (
        context.allocation_end is not None and int(context.allocation_end.timestamp()) == 1900000000
    )


def test_squeue_fills_the_end_and_account_when_no_prolog_set_them() -> None:
    asked: list[str] = []

    def squeue(job_id: str) -> tuple[str | None, str | None]:
        asked.append(job_id)
        return "1900000100", "chem"

    context = slurm_context({"SLURM_JOB_ID": "8", "PMI_RANK": "3"}, squeue)
    assert asked == ["8"]
    assert context is not None and context.rank == 3 and context.account == "chem"
    assert (
        context.allocation_end is not None and int(context.allocation_end.timestamp()) == 1900000100
    )


def test_the_mpi_launchers_rank_wins_over_the_batch_steps_procid() -> None:
    env = {"SLURM_JOB_ID": "5", "SLURM_PROCID": "0", "PMI_RANK": "1", "SLURM_JOB_ACCOUNT": "a"}
    context = slurm_context(env | {"SLURM_JOB_END_TIME": "1900000000"}, no_squeue)
    assert context is not None and context.rank == 1


def test_no_time_limit_leaves_the_end_unknown() -> None:
    context = slurm_context({"SLURM_JOB_ID": "9"}, lambda job_id: (None, None))
    assert context is not None and context.allocation_end is None and context.rank is None


def test_an_end_the_prolog_wrote_for_another_allocation_is_asked_again() -> None:
    env = {
        "SLURM_JOB_ID": "21",
        "SLURM_JOB_ACCOUNT": "qphys",
        "SLURM_JOB_END_TIME": "1900000000",  # the outer allocation's, inherited
        "QSCHED_SLURM_ALLOCATION": "20",
    }
    context = slurm_context(
        env, lambda job_id: ("1900000500", None) if job_id == "21" else (None, None)
    )
    assert context is not None and context.allocation_end is not None
    assert int(context.allocation_end.timestamp()) == 1900000500
    same = slurm_context(env | {"QSCHED_SLURM_ALLOCATION": "21"}, no_squeue)
    assert same is not None and same.allocation_end is not None
    assert int(same.allocation_end.timestamp()) == 1900000000
