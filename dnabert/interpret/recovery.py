"""How well motifs planted into sequences are recovered: the discovered motifs that match each planted matrix (rank
and q-value), each matrix's best log-odds match per row, AUROCs of any per-row score on each matrix's positives, and
the frequency matrices of the planted sites themselves (the ceiling of a discovery). Rows are `planted_lines` rows
(`sequence`, `label`, `motif`, `start`, `strand`) as dicts. `MotifRecovery` measures all of it at the end of a
training run on a planted set (`callbacks=motif_recovery`)."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import lightning as L
import numpy as np
import torch
from scipy.stats import rankdata

from dnabert.atomic import write_json_atomic, write_text_atomic
from dnabert.interpret.attribution import one_hot as nucleotide_one_hot
from dnabert.interpret.jaspar import Matrix, read_meme, tomtom_matches
from dnabert.models.checkpoints import hf_directory_of


def recovery(matches_file: Path, matrices: dict[str, Matrix], cutoff: float) -> list[dict]:
    """Per planted matrix: the discovered motif matching it best (that matrix or another JASPAR matrix of the same
    TF, at q < cutoff) as rank 1 (`recovered`) and as rank <= 3 (`recovered_top3`)."""
    matches = [m for m in csv.DictReader(open(matches_file), delimiter="\t") if float(m["q_value"]) < cutoff]
    rows = []
    for identifier, matrix in matrices.items():
        hits = sorted((m for m in matches if m["jaspar_id"] == identifier
                       or m["jaspar_name"].upper() == matrix.name.upper()), key=lambda m: float(m["q_value"]))
        first = [m for m in hits if m["rank"] == "1"]
        best = (first or hits or [None])[0]
        rows.append({"jaspar_id": identifier, "tf": matrix.name, "motif": best["motif"] if best else "",
                     "matched": best["jaspar_id"] if best else "", "rank": int(best["rank"]) if best else None,
                     "q_value": float(best["q_value"]) if best else None, "recovered": bool(first),
                     "recovered_top3": any(int(m["rank"]) <= 3 for m in hits)})
    return rows


def matrix_scores(one_hot: np.ndarray, matrix: Matrix) -> np.ndarray:
    """Each row's best log-odds match to `matrix` (either strand) over the uniform background, from (N, L, 4)
    one-hot rows."""
    log_odds = np.log((matrix.probabilities + 1e-3) / 0.25).T  # width x 4
    windows = np.lib.stride_tricks.sliding_window_view(one_hot, len(log_odds), axis=1)  # N, L-w+1, 4, w
    # the reverse complement reads ACGT -> TGCA backwards
    return np.max([np.einsum("nlcw,wc->nl", windows, w).max(1) for w in (log_odds, log_odds[::-1, ::-1])], axis=0)


def auroc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve of scores for boolean labels (ties count half)."""
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - labels.sum() * (labels.sum() + 1) / 2) / (labels.sum() * (~labels).sum()))


def planted_matrix_scores(rows: list[dict], matrices: dict[str, Matrix]) -> dict[str, np.ndarray]:
    """Per planted matrix, each row's best log-odds match to it (`matrix_scores`)."""
    one_hot = np.stack([nucleotide_one_hot(r["sequence"]) for r in rows])
    return {identifier: matrix_scores(one_hot, matrix) for identifier, matrix in matrices.items()}


def oracle_auroc(rows: list[dict], scores: dict[str, np.ndarray]) -> float:
    """AUROC of the planted matrices themselves (`planted_matrix_scores`): each row scored by its best match to any
    of them: what separating planted from unplanted rows allows at best."""
    return auroc(np.max(list(scores.values()), axis=0), np.array([r["label"] == "1" for r in rows]))


def per_matrix_auroc(rows: list[dict], scores: np.ndarray, identifiers: Iterable[str]) -> dict[str, float]:
    """Per planted matrix (of `identifiers`), the AUROC of per-row `scores` on its positives against all negatives."""
    negative = np.array([r["label"] == "0" for r in rows])
    result = {}
    for identifier in identifiers:
        mine = np.array([r["motif"] == identifier for r in rows]) | negative
        result[identifier] = auroc(scores[mine], ~negative[mine])
    return result


def own_matrix_auroc(rows: list[dict], scores: dict[str, np.ndarray]) -> dict[str, float]:
    """Per planted matrix, `per_matrix_auroc` of its own best log-odds match: what that matrix allows at best."""
    return {identifier: per_matrix_auroc(rows, values, [identifier])[identifier]
            for identifier, values in scores.items()}


def planted_sites(rows: list[dict], tracks, identifier: str, width: int) -> list[np.ndarray]:
    """The (width, 4) slices of each row's track (ACGT columns) at its planted `identifier` site, read on the strand
    it was written (the reverse complement of ACGT columns is both axes reversed)."""
    sites = []
    for row, track in zip(rows, tracks):
        if row["motif"] == identifier:
            site = track[int(row["start"]) : int(row["start"]) + width]
            sites.append(site if row["strand"] == "+" else site[::-1, ::-1])
    return sites


def site_matrices(rows: list[dict], matrices: dict[str, Matrix]) -> list[Matrix]:
    """Per planted matrix, the frequency matrix of its planted sites in `rows`: what a discovery that found every
    site, exactly aligned, would report."""
    one_hots = [nucleotide_one_hot(r["sequence"]) for r in rows]
    found = []
    for identifier, matrix in matrices.items():
        sites = planted_sites(rows, one_hots, identifier, matrix.probabilities.shape[1])
        counts = np.sum(sites, axis=0).T  # 4 x width, rows A, C, G, T
        found.append(Matrix(identifier, matrix.name, counts / counts.sum(0, keepdims=True), len(sites)))
    return found


def recovery_declaration(config: dict) -> dict:
    """What the recovery tables of a study need from one run's config: the rule, the methods, the planted
    matrices (TF, width, GC)."""
    from dnabert.interpret.planted import planted_matrices

    declared = config["callbacks"]["motif_recovery"]
    matrices = planted_matrices(declared["jaspar"], declared["motifs"])
    return {"q_cutoff": declared["q_cutoff"], "methods": list(declared["methods"]),
            "matrices": {identifier: {"tf": m.name, "width": int(m.probabilities.shape[1]),
                                      "gc": float(m.probabilities[1:3].sum(0).mean())}
                         for identifier, m in matrices.items()}}


def recovery_tables(record: dict) -> str:
    """Markdown of a study record's motif recovery: per arm (background) and method, the classifier's test AUROC,
    the planted matrices' AUROC and the matrices recovered (mean ± sd over seeds); then per matrix the seeds that
    recover it and its AUROC by the classifier and by the matrix itself."""
    from dnabert.study import cell

    declared, runs = record["motif_recovery"], record["runs"]
    methods, cutoff, matrices = declared["methods"], declared["q_cutoff"], declared["matrices"]
    arms = list(dict.fromkeys(run["arm"] for run in runs))
    seeds = len({run["seed"] for run in runs})
    by_arm = {arm: [run["motif_recovery"] for run in runs if run["arm"] == arm] for arm in arms}
    lines = [f"| background | GC | classifier test AUROC | planted matrices' AUROC | method | "
             f"recovered (rank 1, q < {cutoff}) | recovered (rank <= 3) |", "|---|---:|---:|---:|---|---:|---:|"]
    for arm in arms:
        mine = by_arm[arm]
        auroc_cell = cell([r["test_metrics"]["test/auroc"] for r in mine], digits=3)
        bound = cell([r["planted_matrices_auroc"] for r in mine], digits=3)
        gc = f"{100 * np.mean([r['background_gc'] for r in mine]):.0f} %"
        for method in methods:
            fractions = {key: [100 * np.mean([m[key] for m in r["methods"][method]]) for r in mine]
                         for key in ("recovered", "recovered_top3")}
            lines.append(f"| {arm} | {gc} | {auroc_cell} | {bound} | {method} | {cell(fractions['recovered'], 0)} % | "
                         f"{cell(fractions['recovered_top3'], 0)} % |")
    exact = [sum(m["recovered"] for m in r["planted_sites"]) for mine in by_arm.values() for r in mine]
    span = f"{min(exact)}" if min(exact) == max(exact) else f"{min(exact)} to {max(exact)}"
    lines += ["", f"The planted sites' own matrices (every site of the test split, exactly aligned) pass the same rule "
              f"for {span} of {len(matrices)} matrices per run.",
              "", f"Seeds recovering each matrix (rank 1 / rank <= 3), of {seeds}, and per background the AUROC of its "
              "test positives against all test negatives by the classifier / by the matrix itself (mean over seeds):",
              "", "| matrix | TF | width | GC | " + " | ".join(f"{a} {m}" for a in arms for m in methods)
              + " | " + " | ".join(f"{a} AUROC classifier / matrix" for a in arms) + " |",
              "|---|---|---:|---:|" + "---:|" * (len(arms) * (len(methods) + 1))]
    for identifier, matrix in matrices.items():
        cells = []
        for arm in arms:
            for method in methods:
                found = [next(m for m in r["methods"][method] if m["jaspar_id"] == identifier) for r in by_arm[arm]]
                cells.append(f"{sum(m['recovered'] for m in found)} / {sum(m['recovered_top3'] for m in found)}")
        for arm in arms:
            cells.append(" / ".join(f"{np.mean([r['per_matrix_auroc'][by][identifier] for r in by_arm[arm]]):.3f}"
                                    for by in ("classifier", "own_matrix")))
        lines.append(f"| {identifier} | {matrix['tf']} | {matrix['width']} | {100 * matrix['gc']:.0f} % | "
                     + " | ".join(cells) + " |")
    return "\n".join(lines)


class MotifRecovery(L.Callback):
    """After the run's test: each `dnabert motifs` method in `methods` run with its defaults on the test split by the
    best model, and the planted matrices (the `motifs` of `jaspar`, the test file's truth columns) each recovers by
    the rule of `recovery` at `q_cutoff`; beside them the classifier's and each matrix's own AUROC per matrix and
    what the planted sites themselves allow. Written to `out`/motif_recovery.json (the study report reads it) with
    each method's outputs in `out`/motifs-METHOD/."""

    def __init__(self, jaspar: str, motifs: list[str], methods: list[str], q_cutoff: float, out: str,
                 batch_size: int = 64, max_tokens: int = 512):
        self.jaspar, self.motifs, self.methods, self.q_cutoff = jaspar, list(motifs), list(methods), q_cutoff
        self.out, self.batch_size, self.max_tokens = Path(out), batch_size, max_tokens
        self.val_auroc: list[float] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Keep each training epoch's validation AUROC (the learning curve of the record)."""
        if trainer.state.fn == "fit" and not trainer.sanity_checking and "val/auroc" in trainer.callback_metrics:
            self.val_auroc.append(float(trainer.callback_metrics["val/auroc"]))

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            test = {name: float(value) for name, value in trainer.callback_metrics.items() if name.startswith("test/")}
            best = hf_directory_of(trainer.checkpoint_callback.best_model_path)
            with torch.inference_mode(False), torch.enable_grad():  # attributions take gradients; tests run without
                measured = self.measure(best, Path(trainer.datamodule.paths["test"]), pl_module.device)
            write_json_atomic(self.out / "motif_recovery.json",
                              measured | {"test_metrics": test, "val_auroc_by_epoch": self.val_auroc})

    def measure(self, model_dir: Path, test_file: Path, device) -> dict:
        """Everything the record holds of one model and its planted test split."""
        from dnabert.data.labelled_layouts import read_labelled
        from dnabert.interpret.modisco import ModiscoConfig
        from dnabert.interpret.motif_outputs import match_lines, run_motifs
        from dnabert.interpret.motifs import MotifConfig
        from dnabert.interpret.planted import planted_matrices
        from dnabert.models.inference import load_classifier, output_names, predict

        matrices = planted_matrices(self.jaspar, self.motifs)
        known = read_meme(self.jaspar)
        model = load_classifier(model_dir, device)
        rows = list(csv.DictReader(test_file.read_text().splitlines(), delimiter="\t"))
        scores = planted_matrix_scores(rows, matrices)
        classes = output_names(model)
        probabilities = predict(model, [r["sequence"] for r in rows], self.batch_size, self.max_tokens,
                                progress=False)[:, classes.index("1")]
        negatives = "".join(r["sequence"] for r in rows if r["label"] == "0")
        sites = self.out / "planted_sites_matches.tsv"
        write_text_atomic(sites, "\n".join(match_lines(tomtom_matches(site_matrices(rows, matrices), known))) + "\n")
        record = {"background_gc": (negatives.count("G") + negatives.count("C")) / max(len(negatives), 1),
                  "planted_matrices_auroc": oracle_auroc(rows, scores),
                  "per_matrix_auroc": {"classifier": per_matrix_auroc(rows, probabilities, matrices),
                                       "own_matrix": own_matrix_auroc(rows, scores)},
                  "planted_sites": recovery(sites, matrices, self.q_cutoff), "methods": {}, "motifs_found": {}}
        labelled = read_labelled(test_file)
        for method in self.methods:
            config = MotifConfig() if method == "attention" else ModiscoConfig()
            found, _ = run_motifs(model, labelled, "1", classes.index("1"), self.out / f"motifs-{method}", method,
                                  config, Path(self.jaspar), self.batch_size, self.max_tokens, progress=False)
            record["methods"][method] = recovery(self.out / f"motifs-{method}" / "jaspar_matches.tsv", matrices,
                                                 self.q_cutoff)
            record["motifs_found"][method] = len(found)
        return record
