"""How a model is judged: the metrics (AuC, PSNR, SSIM, colourfulness, stains) and ``colorunet evaluate``."""
