"""mediasift: object-storage notifications in, queryable multimodal layers out."""
