"""``gliomics export-nnunet``."""

from __future__ import annotations

from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, setup_logging


@handle_errors
def export_nnunet(
    data: list[Path] = typer.Option(..., "--data", "-d", help="The cohort the run was trained on (any layout); "
                                    "repeat for a run trained on several."),
    splits: Path = typer.Option(..., "--splits", "-s", help="The run's splits.json (or the run folder holding it); "
                                "a K-fold run's (e.g. runs/cv/fold_0/splits.json) gives all K folds."),
    out: Path = typer.Option(..., "--out", "-o", help="nnU-Net v2 dataset folder: nnUNet_raw/DatasetXXX_Name."),
    layout: str = typer.Option("auto", "--layout", help="auto | brats | nnunet | datalist | manifest."),
    regions: bool = typer.Option(True, "--regions/--labels", help="Region-based training on WT, TC, ET and RC, as "
                                 "BraTS scores (default), or plain labels 0-4."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty output folder."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Write the cohort as an nnU-Net v2 raw dataset with the run's patient split (splits_final.json), to train
    nnU-Net side by side on the same patients."""
    setup_logging(verbose)
    from gliomics.data.nnunet_export import SPLITS_FINAL, export_nnunet

    result = export_nnunet(data, splits, out, layout=layout, regions=regions, overwrite=overwrite)
    folds = "; ".join(f"fold {k}: {tr} train, {va} val" for k, (tr, va) in enumerate(result["folds"]))
    test = f", {result['test']} test cases in imagesTs" if result["test"] else ""
    typer.echo(f"wrote {out}: {result['training']} training cases ({folds}){test}; "
               f"{'regions WT, TC, ET, RC' if result['regions'] else 'labels 0-4'}")
    typer.echo(f"next: nnUNetv2_plan_and_preprocess -d {result['dataset_id']} --verify_dataset_integrity, then copy "
               f"{SPLITS_FINAL} into $nnUNet_preprocessed/{out.name}/ before nnUNetv2_train")
