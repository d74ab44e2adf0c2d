# Metrics of each run on the test split, in its method's spaces (DESIGN.md §5).


rule evaluate:
    input:
        features="data/features/{dataset}",
        embeddings=f"{RUN_DIR}/embeddings.npz",
    output:
        f"{RUN_DIR}/scores.json",
    params:
        model=lambda w: METHODS[w.method]["model"],
        evaluate=config["evaluate"],
        seed=config["seed"],
    log:
        "logs/evaluate/{dataset}/{method}/k{k}/seed{seed}.log",
    wildcard_constraints:
        k=r"\d+",
        seed=r"\d+",
    threads: 1
    resources:
        mem_mb=4000,
    script:
        "../scripts/evaluate.py"
