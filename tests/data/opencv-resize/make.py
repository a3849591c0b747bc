# Regenerates the OpenCV reference outputs in this folder (run with Debian's python3-opencv 4.6.0):
#   python3 make.py /path/to/005_scenetext01.jpg
# src.png: a 64x48 crop of the photo (rows 200.., columns 300..), BGR; src_gray.png: cv2.cvtColor(src, BGR2GRAY).
# Each case NAME_HxW_{linear,nearest}.npy is cv2.resize(src, (W, H), interpolation=...) as uint8 HWC (gray: HW).
import sys, numpy as np, cv2
photo = cv2.imread(sys.argv[1], cv2.IMREAD_COLOR)
src = np.ascontiguousarray(photo[200:248, 300:364])
gray = cv2.cvtColor(src, cv2.COLOR_BGR2GRAY)
cv2.imwrite("src.png", src)
cv2.imwrite("src_gray.png", gray)
cases = [("bgr", src, (23, 31)), ("bgr", src, (24, 32)), ("bgr", src, (100, 130)), ("bgr", src, (47, 100)),
         ("bgr", src, (7, 5)), ("bgr", src, (64, 17)), ("bgr", src, (96, 128)), ("bgr", src, (35, 64)),
         ("gray", gray, (23, 31)), ("gray", gray, (100, 130)), ("gray", gray, (24, 32)), ("gray", gray, (51, 77))]
for name, img, (h, w) in cases:
    for mode, flag in (("linear", cv2.INTER_LINEAR), ("nearest", cv2.INTER_NEAREST)):
        np.save(f"{name}_{h}x{w}_{mode}.npy", cv2.resize(img, (w, h), interpolation=flag))
