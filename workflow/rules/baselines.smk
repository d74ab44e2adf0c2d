# Baselines: K-means, GMM-EM, PCA + K-means and "None (labels)", in the same run layout.


rule baseline:
    input:
        "data/features/{dataset}",
    output:
        embeddings=f"{RUN_DIR}/embeddings.npz",
        metrics=f"{RUN_DIR}/metrics.json",
    params:
        method=lambda w: METHODS[w.method],
    log:
        "logs/baseline/{dataset}/{method}/k{k}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/baseline/{dataset}/{method}/k{k}/seed{seed}.tsv"
    wildcard_constraints:
        method=one_of(BASELINE_METHODS),
        k=r"\d+",
        seed=r"\d+",
    threads: 2
    resources:
        mem_mb=8000,
    script:
        "../scripts/baseline.py"
