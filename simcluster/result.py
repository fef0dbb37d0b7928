"""What a :class:`~simcluster.scenario.Scenario` gave: the Run and its analyses, each computed
once, on first use.

A folded workload (a generated transformer that holds one data-parallel replica in full and
only the data-parallel collectives of the others) is handled here, once: the breakdowns,
stragglers, memory and training metrics cover the ranks that stand for all replicas
(``real_ranks``), while the critical path, links and step time use the whole run. Tables are
pyarrow Tables (``.to_pandas()`` where pandas is installed); in Jupyter the result shows
itself as a short HTML summary, and :meth:`Result.plot` gives interactive figures.
"""

from __future__ import annotations

import html
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from simcluster.analysis import (
    critical_path,
    hta,
    limits,
    rank_breakdown,
    step_breakdown,
    summarize,
)
from simcluster.analysis.breakdown import mean_step_time_us
from simcluster.analysis.critical_path import dominant_limit
from simcluster.analysis.fidelity import recorded_run, step_fidelity
from simcluster.analysis.training import TrainingInfo, flops_utilization, training_summary
from simcluster.cost import Costs, costs, price_per_hour
from simcluster.placement import Bound
from simcluster.sim.result import Run
from simcluster.topology.catalog import AcceleratorSpec

if TYPE_CHECKING:
    from simcluster.scenario import Scenario


class Result:
    """A simulated scenario and its analyses (module docstring).

    Attributes:
        scenario: what was simulated.
        bound: the workload bound to the cluster (what-ifs applied) by the placement.
        run: the simulation's tables (:class:`~simcluster.sim.Run`).
        cluster_note: a sentence when the cluster was built from the recording, else None.
    """

    def __init__(self, scenario: Scenario, bound: Bound, run: Run,
                 cluster_note: str | None = None) -> None:
        self.scenario = scenario
        self.bound = bound
        self.run = run
        self.cluster_note = cluster_note

    # -- what was run -----------------------------------------------------------------------

    @property
    def workload(self) -> Any:
        return self.bound.workload

    @property
    def cluster(self) -> Any:
        return self.bound.cluster

    @property
    def specs(self) -> list[AcceleratorSpec]:
        """The accelerator spec of each rank."""
        return [self.cluster.specs[d] for d in self.bound.placement.devices]

    @cached_property
    def real_ranks(self) -> int:
        """Ranks that carry their full op list: all of them, or one replica when folded."""
        info = TrainingInfo.of(self.workload)
        if info is not None:
            return info.real_ranks
        fold = self.workload.meta.extra.get("fold")  # a recorded workload (docs/record.md)
        if isinstance(fold, dict) and isinstance(fold.get("full_ranks"), int):
            return fold["full_ranks"]
        return self.workload.num_ranks

    @property
    def makespan_us(self) -> float:
        return self.run.makespan_us

    @cached_property
    def step_time_us(self) -> float:
        """Mean step time (us): the makespan over the number of steps."""
        return mean_step_time_us(self.run)

    # -- analyses ---------------------------------------------------------------------------

    @cached_property
    def breakdown(self) -> pa.Table:
        """Per-rank partition of the run (``analysis.rank_breakdown``), real ranks only."""
        return rank_breakdown(self.run, real=self.real_ranks).slice(0, self.real_ranks)

    @cached_property
    def steps(self) -> pa.Table:
        """The partition per (step, rank), real ranks only."""
        t = step_breakdown(self.run, self.real_ranks)
        return t.filter(pc.less(t.column("rank"), self.real_ranks))

    @cached_property
    def comm_breakdown(self) -> pa.Table:
        """Per (rank, kind of parallelism): time moving its data and exposed (us), real
        ranks only (``analysis.parallelism.comm_breakdown``)."""
        from simcluster.analysis.parallelism import comm_breakdown

        t = comm_breakdown(self.run)
        return t.filter(pc.less(t.column("rank"), self.real_ranks))

    @cached_property
    def link_parallelism(self) -> pa.Table:
        """Per (link, kind of parallelism): the limiting flow-time of its traffic."""
        from simcluster.analysis.parallelism import link_parallelism

        return link_parallelism(self.run)

    @cached_property
    def critical_path(self) -> pa.Table:
        """The cross-rank critical path, segment by segment."""
        return critical_path(self.run)

    @cached_property
    def limits(self) -> dict[str, float]:
        """Share of the critical path per category, largest first."""
        return limits(self.critical_path)

    @cached_property
    def bottleneck_classes(self) -> list[dict[str, Any]]:
        """Bottleneck links with symmetric links folded into one row each (``alike``: how
        many others the row stands for)."""
        from simcluster.analysis.links import bottleneck_classes

        return bottleneck_classes(self.run, self.scenario.top_links)

    @property
    def bottleneck(self) -> str | None:
        """The largest share of :attr:`limits` (``compute``, ``host``, a link role...)."""
        return dominant_limit(self.limits)

    # -- HolisticTraceAnalysis's view (analysis/hta.py), over the real ranks ----------------

    @cached_property
    def temporal_breakdown(self) -> pa.Table:
        """Per rank: idle, compute and non-compute GPU time as HTA defines them."""
        return hta.temporal_breakdown(self.run, self.real_ranks)

    @cached_property
    def kernel_type_overlap(self) -> pa.Table:
        """Time per combination of kernel types running at once (HTA's kernel-type table)."""
        return hta.kernel_type_overlap(self.run, self.real_ranks)

    @cached_property
    def kernel_breakdown(self) -> pa.Table:
        """Time by kernel name per kernel type, top kernels and ``others`` (HTA's)."""
        return hta.kernel_breakdown(self.run, self.real_ranks)

    @cached_property
    def idle_time_breakdown(self) -> pa.Table:
        """Per rank and stream, idle time by cause: host wait, kernel wait, other (HTA's)."""
        return hta.idle_time_breakdown(self.run, self.real_ranks)

    @cached_property
    def comm_comp_overlap(self) -> pa.Table:
        """Per rank, the share of communication time overlapped by computation (HTA's)."""
        return hta.comm_comp_overlap(self.run, self.real_ranks)

    @cached_property
    def gpu_time(self) -> dict[str, float]:
        """Over the real ranks, HTA's idle, compute and non-compute shares of the kernel span
        and the share of communication that computation overlaps (percent)."""
        return hta.overall(self.temporal_breakdown, self.comm_comp_overlap)

    @cached_property
    def recorded(self) -> Run | None:
        """The recording of an imported trace as a Run (timeline only; None for others)."""
        return recorded_run(self.workload)

    @cached_property
    def recorded_gpu_time(self) -> dict[str, float] | None:
        """:attr:`gpu_time` computed on the recording of an imported trace (None for others),
        to set beside the simulated one."""
        rec = self.recorded
        if rec is None:
            return None
        return hta.overall(hta.temporal_breakdown(rec, self.real_ranks),
                           hta.comm_comp_overlap(rec, self.real_ranks))

    @cached_property
    def training(self) -> dict[str, Any] | None:
        """MFU, tokens/s, memory and bubble of a generated transformer; None for others."""
        return training_summary(self.run, self.workload, self.breakdown, self.specs)

    @cached_property
    def mfu(self) -> float | None:
        """Model FLOPs utilization (a generated transformer's exact one; for other workloads
        their ops' FLOPs over the devices' peak)."""
        if self.training is not None:
            return float(self.training["mfu"])
        dtype = self.workload.meta.extra.get("dtype", "bf16")
        return flops_utilization(self.run, dtype, self.specs, self.step_time_us)

    @cached_property
    def cost(self) -> Costs:
        """USD per hour, step and 1M tokens (None where a price or token count is unknown)."""
        usd_h = price_per_hour(self.cluster, self.bound.placement.devices,
                               self.scenario.whatif.price)
        return costs(self.step_time_us, usd_h, self.workload.meta.extra.get("tokens_per_step"))

    @cached_property
    def training_run(self) -> dict[str, float | None] | None:
        """Hours and USD to train on ``whatif.token_budget`` tokens (None without a budget;
        ``hours`` None when the workload does not say how many tokens a step processes)."""
        budget = self.scenario.whatif.token_budget
        return None if budget is None else self.cost.training(budget, self.step_time_us)

    @cached_property
    def fidelity(self) -> pa.Table:
        """Simulated vs recorded ProfilerStep durations of an imported trace (empty for
        others)."""
        return step_fidelity(self.run, self.workload, self.recorded)

    @property
    def import_report(self) -> dict[str, Any] | None:
        """What the importer used, skipped and assumed (None for native workloads)."""
        return (self.workload.meta.extra or {}).get("import") or None

    @cached_property
    def summary(self) -> dict[str, Any]:
        """The JSON summary (``summary.json`` of the run folder)."""
        out = summarize(self.run, self.breakdown, top_links=self.scenario.top_links,
                        path=self.critical_path, training=self.training, cost=self.cost)
        if self.training_run is not None:
            out["cost"]["training_run"] = self.training_run
        return out

    def document(self) -> dict[str, Any]:
        """Everything a script wants in one JSON-ready dict: ``summary``, ``fidelity`` (rows;
        empty unless recorded), ``import_report`` (or None), ``cluster_note`` and
        ``gpu_time`` (HTA's shares; ``simcluster replay --json`` prints it)."""
        return {"summary": self.summary, "fidelity": self.fidelity.to_pylist(),
                "import_report": self.import_report, "cluster_note": self.cluster_note,
                "gpu_time": self.gpu_time, "recorded_gpu_time": self.recorded_gpu_time}

    # -- outputs ----------------------------------------------------------------------------

    @property
    def output_files(self) -> tuple[str, ...]:
        """The files :meth:`write` puts in the run folder."""
        from simcluster.export.run_dir import output_files

        return output_files(fidelity=self.fidelity.num_rows > 0,
                            imported=self.import_report is not None)

    def write(self, out: str | Path) -> Path:
        """Write the run folder (``docs/formats.md``): all tables, the summary and, for an
        imported trace, the fidelity table and the import report. Returns the folder."""
        from simcluster.export.run_dir import write_run

        return write_run(self.run, out, self.summary, self.breakdown, self.critical_path,
                         steps=self.steps, fidelity=self.fidelity,
                         import_report=self.import_report, comm=self.comm_breakdown,
                         link_kinds=self.link_parallelism)

    def write_report(self, out: str | Path) -> Path:
        """Write the one-page interactive HTML report (needs plotly) to ``out``."""
        from simcluster.export.report import write_report

        return write_report(self.run, self.summary, self.breakdown, self.critical_path, out,
                            fidelity=self.fidelity, import_report=self.import_report)

    def plot(self, what: str = "timeline") -> Any:
        """An interactive Plotly figure that Jupyter draws inline: ``timeline``, ``links``,
        ``breakdown`` or ``limits`` (``fig.write_html(path)`` saves it). Needs plotly."""
        from simcluster.export.plots import plot

        return plot(what, self.run, self.breakdown, self.limits, self.rank_classes)

    @cached_property
    def rank_classes(self) -> list[list[int]]:
        """The (real) ranks grouped by how their time splits (alike ranks together)."""
        from simcluster.analysis.breakdown import rank_classes

        return rank_classes(self.breakdown)

    def _repr_html_(self) -> str:
        """Step time, what limits the step and the busiest links, for Jupyter."""
        lim = ", ".join(f"{k} {100 * v:.1f}%" for k, v in self.limits.items())
        rows = "".join(
            f"<tr><td>{html.escape(r['src'])} &rarr; {html.escape(r['dst'])}</td>"
            f"<td>{html.escape(str(r['role']))}</td><td>{100 * r['utilization']:.1f}%</td></tr>"
            for r in self.summary["busiest_links"][:5])
        return (f"<div><b>{html.escape(str(self.workload.meta.name))}</b> on "
                f"<b>{html.escape(self.cluster.name)}</b>: step time "
                f"<b>{self.step_time_us / 1e3:.3f} ms</b> ({self.workload.num_ranks} ranks, "
                f"{self.workload.num_ops:,} ops)<br>what limits this step: "
                f"{html.escape(lim) or 'nothing'}<table><tr><th>busiest link</th><th>role</th>"
                f"<th>utilization</th></tr>{rows}</table></div>")

    def __repr__(self) -> str:
        return (f"<Result {self.workload.meta.name!r} on {self.cluster.name!r}: step "
                f"{self.step_time_us:.3f} us>")
