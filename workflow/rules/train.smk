# Training: every trained method (uvac, cat_uvac, linear_vae variants) × K × seed the tables name.


rule train:
    input:
        "data/features/{dataset}",
    output:
        model=f"{RUN_DIR}/model.pt",
        history=f"{RUN_DIR}/history.csv",
        embeddings=f"{RUN_DIR}/embeddings.npz",
        metrics=f"{RUN_DIR}/metrics.json",
    params:
        method=lambda w: METHODS[w.method],
        train=config["train"],
    log:
        "logs/train/{dataset}/{method}/k{k}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/train/{dataset}/{method}/k{k}/seed{seed}.tsv"
    wildcard_constraints:
        method=one_of(VAE_METHODS),
        k=r"\d+",
        seed=r"\d+",
    threads: config["train"]["threads"]
    resources:
        mem_mb=6000,
        gpu=config["train"]["gpus"],
        runtime=24 * 60,
    script:
        "../scripts/train.py"


rule runs:
    """Target: every run (trained or baseline) of the tables and figures, fitted and scored."""
    input:
        [run_path(run, "scores.json") for run in all_runs()],
