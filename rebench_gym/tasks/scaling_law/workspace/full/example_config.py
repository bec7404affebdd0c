# Configuration of the task's GPT variant (full scale: OpenWebText, 6 H100 GPUs).
# (Each $$name below is filled from task.yaml's full-scale parameters in your workspace.)
# Change only n_embd and max_iters (and seed/out if you like); everything else is fixed.
# Usage (one experiment per GPU, as in the original):
#   CUDA_VISIBLE_DEVICES=0 python train.py example_config.py --n_embd=256 --max_iters=2000
# One run may also use several GPUs if they split the batch evenly (2 or 4 here):
#   torchrun --standalone --nproc_per_node=2 train.py example_config.py ...

# data: data/train.bin and data/val.bin (uint16 GPT-2 token ids, nanoGPT's prepare.py output)
data_dir = "data"
vocab_size = $vocab_size  # GPT-2's 50257 padded to a multiple of 64

# model
n_layer = $n_layer
n_head = $n_head
n_embd = 1000
block_size = $block_size

# training (batch_size is the global batch, split across the processes; n_layer, block_size
# and batch_size are the original task's)
batch_size = $batch_size
max_iters = 20000
learning_rate = 6e-4
min_lr_ratio = 0.1
warmup_frac = 0.05
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
seed = 1

# evaluation at the end of the run
eval_batches = $eval_batches
eval_batch_size = $eval_batch_size

# system
device = "$device"
threads = 0
compile = $compile
log_interval = 100
out = ""  # a path to write the run's summary as JSON

# experiment budget: runs above this many FLOPs refuse to start
flop_cap = $experiment_flops
