"""passport stage: the EU battery passport (Regulation (EU) 2023/1542, Art. 77, Annex XIII).

    attributes  the attribute table (data/annex_xiii.toml): Battery Pass v1.2 path, Annex XIII
                access tier and basis, source (static, registry, ledger)
    view        the passport as a view over registry, ledger and static attributes; ``read`` and
                ``search`` filter it by the reader's tier before anything is serialised
    service     writes: static attributes, condition reports, contacts, waste, recycling
    export      Battery Pass v1.2 JSON and its validation; jsonld: the JSON-LD form
    importer    import from Battery Pass v1.2 JSON; schemas: the consortium's schemas, read in
                place from shared/, and their quirks; qr: the QR code of the public page
"""
