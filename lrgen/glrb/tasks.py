"""The nine Genomics Long-Range Benchmark tasks: files, columns, labels, head, loss and metric of each."""

from __future__ import annotations

from dataclasses import dataclass

from lrgen.errors import LrgenError

VARIANT = "variant"  # ref/alt windows around a variant, one binary label
CLASSIFICATION = "classification"  # one window, binary or multilabel
BULK_RNA = "bulk_rna"  # one window around a TSS, one regression per tissue
CAGE = "cage"  # one window, a (bins, tracks) regression


@dataclass(frozen=True)
class Task:
    """One GLRB task as the benchmark publishes it (see docs/glrb.md)."""

    name: str
    aliases: tuple[str, ...]
    kind: str
    files: tuple[str, ...]  # candidate CSV paths under the data folder, first found is read
    columns: tuple[str, ...]  # columns the CSV must have
    label_column: str | None  # column holding the label(s); None for tasks with a separate label file
    label_shape: str  # human description of one example's labels
    genome: str  # genome build the published coordinates refer to (pass the matching --genome)
    head: str
    loss: str  # "bce" (binary / multilabel logits) or "mse"
    metric: str  # the primary metric ("auroc", "auprc", "r2")
    metrics: tuple[str, ...]  # every metric reported
    pool_bp: int = 0  # width of the centred pooling region in bp (0: not pooled at the centre)
    tissue: bool = False  # eQTL: a tissue embedding enters the head
    test_only: bool = False  # OMIM: no train split, evaluated zero-shot
    extra_files: tuple[str, ...] = ()  # further required files (bulk RNA labels)

    @property
    def binary(self) -> bool:
        return self.loss == "bce"


_VARIANT_HEAD = "mean(ref) ⊕ mean(alt) over the centred 1,536 bp, MLP"
_CENTRED_HEAD = "mean over the centred 200 bp, MLP"

TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task(
            name="variant_effect_causal_eqtl",
            aliases=("eqtl", "causal_eqtl"),
            kind=VARIANT,
            files=("variant_effect_causal_eqtl/All_Tissues.csv",),
            columns=("CHROM", "POS", "ALT", "label", "tissue", "distance_to_nearest_TSS", "split"),
            label_column="label",
            label_shape="binary (+ tissue)",
            genome="hg38",
            head=_VARIANT_HEAD + " with a tissue embedding",
            loss="bce",
            metric="auroc",
            metrics=("auroc", "auprc"),
            pool_bp=1536,
            tissue=True,
        ),
        Task(
            name="variant_effect_pathogenic_clinvar",
            aliases=("clinvar", "pathogenic_clinvar"),
            kind=VARIANT,
            files=("variant_effect_pathogenic/vep_pathogenic_coding.csv",),
            columns=("CHROM", "POS", "ALT", "INT_LABEL", "split"),
            label_column="INT_LABEL",
            label_shape="binary",
            genome="hg38",
            head=_VARIANT_HEAD,
            loss="bce",
            metric="auroc",
            metrics=("auroc", "auprc"),
            pool_bp=1536,
        ),
        Task(
            name="variant_effect_pathogenic_omim",
            aliases=("omim", "pathogenic_omim"),
            kind=VARIANT,
            files=(
                "variant_effect_pathogenic/vep_pathogenic_non_coding.csv",
                "variant_effect_pathogenic/vep_pathogenic_non_coding_subset.csv",
            ),
            columns=("CHROM", "POS", "ALT", "INT_LABEL", "split"),
            label_column="INT_LABEL",
            label_shape="binary, test split only",
            genome="hg38",
            head="zero-shot: distance of mean(ref) and mean(alt) over 1,536 bp (or a fine-tuned variant head)",
            loss="bce",
            metric="auroc",
            metrics=("auroc", "auprc"),
            pool_bp=1536,
            test_only=True,
        ),
        Task(
            name="bulk_rna_expression",
            aliases=("bulk_rna", "rna_expression"),
            kind=BULK_RNA,
            files=("bulk_rna_expression/gene_coordinates.csv",),
            columns=("chrom", "CAGE_representative_TSS", "strand", "split"),
            label_column=None,
            label_shape="218 regressions (one per tissue, rna_expression_values.csv)",
            genome="hg19",
            head="mean over the 1,536 bp around the TSS (gene strand), linear per tissue",
            loss="mse",
            metric="r2",
            metrics=("r2", "pearson"),
            pool_bp=1536,
            extra_files=("bulk_rna_expression/rna_expression_values.csv",),
        ),
        Task(
            name="cage_prediction",
            aliases=("cage",),
            kind=CAGE,
            files=("cage_prediction/sequences_coordinates.csv",),
            columns=("chrom", "start", "stop", "split", "npy_idx"),
            label_column=None,
            label_shape="896 bins x 50 tracks of 128 bp (targets_subset/*.npz)",
            genome="hg38",
            head="mean per 128 bp bin, linear per track (R² on log1p targets)",
            loss="mse",
            metric="r2",
            metrics=("r2", "pearson"),
        ),
        Task(
            name="chromatin_features_histone_marks",
            aliases=("histone_marks", "histone", "histones"),
            kind=CLASSIFICATION,
            files=(
                "chromatin_features/histones_and_dnase.csv",
                "chromatin_features/histones_and_dnase_subset.csv",
            ),
            columns=("CHROM", "POS", "HISTONES", "split"),
            label_column="HISTONES",
            label_shape="20 binary marks on POS-100..POS+99",
            genome="hg19",
            head=_CENTRED_HEAD,
            loss="bce",
            metric="auprc",
            metrics=("auprc", "auroc"),
            pool_bp=200,
        ),
        Task(
            name="chromatin_features_dna_accessibility",
            aliases=("dna_accessibility", "dnase", "accessibility"),
            kind=CLASSIFICATION,
            files=(
                "chromatin_features/histones_and_dnase.csv",
                "chromatin_features/histones_and_dnase_subset.csv",
            ),
            columns=("CHROM", "POS", "DNASE", "split"),
            label_column="DNASE",
            label_shape="multilabel DNase accessibility on POS-100..POS+99",
            genome="hg19",
            head=_CENTRED_HEAD,
            loss="bce",
            metric="auprc",
            metrics=("auprc", "auroc"),
            pool_bp=200,
        ),
        Task(
            name="regulatory_element_promoter",
            aliases=("promoter", "promoters"),
            kind=CLASSIFICATION,
            files=(
                "regulatory_elements/promoter_dataset.csv",
                "regulatory_elements/promoter_dataset_subset.csv",
            ),
            columns=("CHROM", "START", "STOP", "label", "split"),
            label_column="label",
            label_shape="binary",
            genome="hg38",
            head=_CENTRED_HEAD,
            loss="bce",
            metric="auprc",
            metrics=("auprc", "auroc"),
            pool_bp=200,
        ),
        Task(
            name="regulatory_element_enhancer",
            aliases=("enhancer", "enhancers"),
            kind=CLASSIFICATION,
            files=(
                "regulatory_elements/enhancer_dataset.csv",
                "regulatory_elements/enhancer_dataset_subset.csv",
            ),
            columns=("CHROM", "START", "STOP", "label", "split"),
            label_column="label",
            label_shape="binary",
            genome="hg38",
            head=_CENTRED_HEAD,
            loss="bce",
            metric="auroc",
            metrics=("auroc", "auprc"),
            pool_bp=200,
        ),
    )
}

_ALIASES = {alias: t.name for t in TASKS.values() for alias in (t.name, *t.aliases)}


def get_task(name: str) -> Task:
    """The task called ``name`` (full name or alias, case-insensitive)."""
    key = name.strip().lower().replace("-", "_")
    if key not in _ALIASES:
        known = ", ".join(f"{t.name} ({', '.join(t.aliases)})" for t in TASKS.values())
        raise LrgenError(f"unknown GLRB task {name!r}: choose one of {known}")
    return TASKS[_ALIASES[key]]
