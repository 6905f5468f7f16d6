"""How a model is judged: the metrics (AuC, PSNR, SSIM, colorfulness, stains) and ``colorunet evaluate``."""
