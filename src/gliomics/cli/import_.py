"""``gliomics import``."""

from __future__ import annotations

from pathlib import Path

import typer

from gliomics.cli.common import handle_errors, setup_logging

_FORMATS = "brats2024 | brats2021 | ucsf-pdgm | egd | tcga | dicom"


@handle_errors
def import_(
    format: str = typer.Option(..., "--format", "-f", help=_FORMATS),
    input: Path = typer.Option(..., "--input", "-i",
                               help="Dataset folder (tcga: the table; dicom: a study or a folder of studies)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (manifest.csv, markers.csv, labels/ …)."),
    metadata: Path | None = typer.Option(None, "--metadata", help="ucsf-pdgm: metadata CSV; egd: metadata.json."),
    images: Path | None = typer.Option(None, "--images", help="tcga: image cases whose ids hold the barcodes."),
    unknown_as_missing: bool = typer.Option(False, "--unknown-as-missing",
                                            help="Leave unrecognised marker values blank instead of failing."),
    series: list[str] = typer.Option([], "--series", help="dicom: SEQUENCE=<series number or SeriesInstanceUID> "
                                     "(repeatable), e.g. --series t1c=1201: take this series as given."),
    case_id: str | None = typer.Option(None, "--case-id", help="dicom: name of a single study's case."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Convert again what the output already has."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Turn a public dataset (BraTS, UCSF-PDGM, EGD, TCGA) or DICOM studies into a manifest and a markers table."""
    setup_logging(verbose)
    from gliomics.data.datasets import import_dataset
    from gliomics.errors import ConfigError

    chosen = {}
    for item in series:
        key, sep, value = item.partition("=")
        if not sep or not value.strip():
            raise ConfigError(f"--series {item!r}: expected SEQUENCE=<series number or SeriesInstanceUID>, "
                              "e.g. t1c=1201")
        chosen[key.strip()] = value.strip()
    result = import_dataset(format, input, out, metadata=metadata, images=images,
                            unknown_as_missing=unknown_as_missing, series=chosen or None, case_id=case_id,
                            overwrite=overwrite)
    for cid, lines in result.get("decisions", {}).items():
        for line in lines:
            typer.echo(f"{cid}: {line}")
    written = [str(result[k]) for k in ("manifest", "markers_csv") if k in result]
    typer.echo(f"imported {result['cases']} cases and {result['markers']} marker rows ({format}); "
               f"wrote {', '.join(written) or 'nothing'}")
