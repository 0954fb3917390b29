"""Corpus readers: each turns one on-disk layout into :class:`Conversation` records.

Adding a corpus is adding a :class:`CorpusReader` subclass in its own module and one line in
:data:`READERS`.
"""

from fdenv.corpora.base import (
    ChannelRef,
    Conversation,
    CorpusItem,
    CorpusReader,
    CorpusScan,
    SkipItem,
)
from fdenv.corpora.fisher import FisherReader
from fdenv.corpora.folder import FolderReader
from fdenv.corpora.seamless import SeamlessReader

READERS: dict[str, type[CorpusReader]] = {
    SeamlessReader.name: SeamlessReader,
    FolderReader.name: FolderReader,
    FisherReader.name: FisherReader,
}


def get_reader(name: str) -> type[CorpusReader]:
    if name not in READERS:
        raise ValueError(f"unknown corpus type {name!r}; accepted: {sorted(READERS)}")
    return READERS[name]


__all__ = [
    "READERS",
    "ChannelRef",
    "Conversation",
    "CorpusItem",
    "CorpusReader",
    "CorpusScan",
    "FisherReader",
    "FolderReader",
    "SeamlessReader",
    "SkipItem",
    "get_reader",
]
