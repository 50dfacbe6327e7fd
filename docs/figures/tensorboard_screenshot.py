"""Screenshots of TensorBoard showing a ReconstructionLogger run on real faces.

Trains the guide's autoencoder on LFW (32x32 faces, three levels, greedy)
with a `ReconstructionLogger` and Keras' own `TensorBoard` callback, serves
the log directory with `tensorboard`, and has headless Chromium save the
Images and Scalars dashboards as PNG files:

    python docs/figures/tensorboard_screenshot.py docs/images \
        --lfw-dir ../shared/data/lfw

Needs `tensorboard` and a `chromium` (or `chromium-browser`,
`google-chrome`) binary on the PATH; nothing goes over the network.
"""

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from urllib.parse import quote


def train(log_dir, lfw_dir, max_images, epochs):
    import keras

    from keras_recursive_ae import MirroredConvStack, RecursiveTrainer
    from keras_recursive_ae.callbacks.reconstruction_logger import ReconstructionLogger
    from keras_recursive_ae.datasets.lfw import load_lfw

    keras.utils.set_random_seed(0)
    faces = load_lfw(lfw_dir, image_size=32, max_images=max_images)
    trainer = RecursiveTrainer(
        MirroredConvStack(filters=(16, 32, 64), input_shape=faces.image_shape)
    )
    trainer.compile(optimizer="adam", loss="mse")
    logger = ReconstructionLogger(
        faces.numpy("validation", max_images=8), log_dir, autoencoder=trainer.autoencoder
    )
    tensorboard = keras.callbacks.TensorBoard(log_dir, write_graph=False)
    trainer.fit(
        faces.train,
        epochs=epochs,
        validation_data=faces.validation,
        callbacks=[logger, tensorboard],
        verbose=2,
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def browser():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    raise SystemExit("No chromium binary on the PATH (apt-get install chromium).")


def screenshot(url, path, size):
    subprocess.run(
        [
            browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={size}",
            "--virtual-time-budget=20000",
            f"--screenshot={path}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=180,
    )
    from PIL import Image

    # 128 colours: a third of the bytes, no visible change on these pages.
    Image.open(path).convert("RGB").quantize(128).save(path, optimize=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    parser.add_argument("--lfw-dir", default="../shared/data/lfw")
    parser.add_argument("--max-images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, nargs="+", default=[4])
    parser.add_argument("--log-dir", help="keep the logs here (default: a temporary folder)")
    args = parser.parse_args()
    log_dir = args.log_dir or tempfile.mkdtemp(prefix="tensorboard-guide-")
    lfw_dir = args.lfw_dir if os.path.exists(args.lfw_dir) else None
    epochs = args.epochs[0] if len(args.epochs) == 1 else args.epochs
    train(log_dir, lfw_dir, args.max_images, epochs)

    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tensorboard.main",
            "--logdir",
            log_dir,
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}/"
        for _ in range(60):
            try:
                urllib.request.urlopen(base + "data/runs", timeout=2)
                break
            except OSError:
                time.sleep(1)
        time.sleep(5)  # let it read the event files
        os.makedirs(args.out_dir, exist_ok=True)
        screenshot(
            base + "#images&tagFilter=" + quote("^reconstructions$|stage_3"),
            os.path.join(args.out_dir, "tensorboard_images.png"),
            "1200,900",
        )
        screenshot(
            base + "#scalars&tagFilter=" + quote("reconstruction/|^stage$|rebuild_mse"),
            os.path.join(args.out_dir, "tensorboard_scalars.png"),
            "1200,1350",
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"logs in {log_dir}")


if __name__ == "__main__":
    main()
