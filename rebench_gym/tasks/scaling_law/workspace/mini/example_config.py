# Configuration of the task's GPT variant (mini scale: a synthetic corpus, 2 CPU cores).
# Change only n_embd and max_iters (and seed/out if you like); everything else is fixed.
# Usage: python train.py example_config.py --n_embd=16 --max_iters=50

# data: data/train.bin and data/val.bin (uint16 token ids), vocabulary of the corpus
data_dir = "data"
vocab_size = 173

# model
n_layer = 2
n_head = 2
n_embd = 16
block_size = 64

# training
batch_size = 16
max_iters = 50
learning_rate = 3e-3
min_lr_ratio = 0.1
warmup_frac = 0.05
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
seed = 1

# evaluation at the end of the run
eval_batches = 64
eval_batch_size = 16

# system
device = "cpu"
threads = 1  # one thread per run: run two experiments side by side on two cores
compile = False
log_interval = 50
out = ""  # a path to write the run's summary as JSON

# experiment budget: runs above this many FLOPs refuse to start
flop_cap = 2e9
