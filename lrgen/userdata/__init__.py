"""Fine-tuning on the user's own data (``lrgen finetune --task regions|tracks|table``): BED labels, bigWig tracks or
label tables in, a fine-tuned folder that evaluate, predict and score-vcf use."""
