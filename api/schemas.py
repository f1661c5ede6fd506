"""Response shapes of the REST API, for the OpenAPI documentation at /docs.

The bodies themselves come from ``StudyResult.to_json``; these models document
the seed service's keys (which never change) and allow the extra ones.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SUCCESS_EXAMPLE: dict[str, Any] = {
    "study_uid": "1.2.826.0.1.3680043.8.498.1",
    "series_uid": "1.2.826.0.1.3680043.8.498.2",
    "probability_of_pathology": 0.87,
    "pathology": 1,
    "top_pathologies": ["Emphysema", "Lung nodule", "Consolidation"],
    "most_dangerous_pathology_type": "Lung nodule",
    "processing_status": "Success",
    "time_of_processing": 12.4,
    "findings": {"emphysema": {"display_name": "Emphysema", "probability": 0.87,
                               "assessed": True, "measurements": [], "evidence": [],
                               "note": ""}},
    "series_selection": {"chosen_series_uid": "1.2.826.0.1.3680043.8.498.2", "series": []},
    "model_versions": {"chest_quant": {"name": "chest_quant", "version": "0.1.0",
                                       "weights_installed": True, "findings": ["emphysema"],
                                       "description": ""}},
    "request_id": "5f0c2a6e9b1d4c7e",
}

FAILURE_EXAMPLE: dict[str, Any] = {
    "study_uid": "",
    "series_uid": "",
    "probability_of_pathology": None,
    "pathology": None,
    "top_pathologies": [],
    "most_dangerous_pathology_type": None,
    "processing_status": "Failure",
    "time_of_processing": 0.8,
    "error": "No usable series: series 2 'CT Body 3.0' covers only 38 mm (at least 120 mm "
    "needed) and shows no lung fields.",
    "error_code": "no_usable_series",
    "request_id": "5f0c2a6e9b1d4c7e",
}


class PredictionResponse(BaseModel):
    """The seed service's keys; extra keys (findings, series_selection, ...) may follow."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [SUCCESS_EXAMPLE]})

    study_uid: str = Field(description="StudyInstanceUID of the analysed study ('' if unknown).")
    series_uid: str = Field(description="SeriesInstanceUID of the analysed series ('' if none).")
    probability_of_pathology: float | None = Field(
        description="Probability (0..1) that any of the findings is present; null on Failure."
    )
    pathology: int | None = Field(description="1 if the probability reaches the decision "
                                  "threshold, else 0; null on Failure.")
    top_pathologies: list[str] = Field(description="Display names of the most probable "
                                       "findings, most probable first.")
    most_dangerous_pathology_type: str | None = Field(
        description="The most urgent finding judged present, or null."
    )
    processing_status: str = Field(description="'Success' or 'Failure'.")
    time_of_processing: float = Field(description="Seconds spent on the request.")


class FailureResponse(PredictionResponse):
    """A Failure: same keys, null results, and an actionable `error`."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [FAILURE_EXAMPLE]})

    error: str = Field(description="What went wrong, in a sentence a user can act on.")
    error_code: str | None = Field(None, description="Machine-readable cause.")


class HealthResponse(BaseModel):
    """`status` is the seed's key; the rest says what this node can do."""

    model_config = ConfigDict(extra="allow")

    status: str = Field(description="'healthy' when the node can take requests.")
    version: str
    models: list[dict[str, Any]]
    stacker: str
    detects: list[str]
    does_not_assess: list[str]
    disclaimer: str
