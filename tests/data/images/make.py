# Regenerates the image fixtures here (Debian's python3-pil 9.4 and python3-opencv 4.6):
#   python3 make.py /path/to/004_left.jpg
# photo.*: a 24x16 (width x height) crop of a real photo in each supported format; the lossless ones (png, bmp,
# webp) hold the same pixels. The rest are the odd and broken files the loader must report cleanly.
import io, struct, sys, zlib
import numpy as np
from PIL import Image
src = Image.open(sys.argv[1]).convert("RGB").crop((300, 200, 324, 216))
src.save("photo.png")
src.save("photo.bmp")
src.save("photo.webp", lossless=True)
src.save("photo.jpg", quality=90)
src.convert("L").save("photo_gray.png")
rgba = src.copy(); rgba.putalpha(Image.fromarray((np.arange(24 * 16).reshape(16, 24) % 256).astype(np.uint8)))
rgba.save("photo_rgba.png")                      # alpha varies per pixel; colours are those of photo.png
src.quantize(16).save("photo_palette.png")        # palette PNG
# The same JPEG pixels with and without an EXIF orientation (6: rotate 90 degrees clockwise to view).
exif = Image.Exif(); exif[0x0112] = 6
src.save("oriented_6.jpg", quality=90, exif=exif.tobytes())
src.save("gif_inside.png", format="GIF")         # a GIF named .png: recognised by content, rejected
src.save("jpeg_inside.png", format="JPEG", quality=90)  # a JPEG named .png: decodes
src.save("tiny.gif")
src.save("tiny.tiff")
# Cut inside the pixel data (the 24x16 JPEG is mostly header, so a larger crop is cut here).
buf = io.BytesIO(); Image.open(sys.argv[1]).convert("RGB").crop((200, 150, 360, 270)).save(buf, "JPEG", quality=90)
open("truncated.jpg", "wb").write(buf.getvalue()[: len(buf.getvalue()) * 6 // 10])
data = open("photo.png", "rb").read(); open("truncated.png", "wb").write(data[: len(data) - 40])
open("not_an_image.jpg", "w").write("this is a text file with a .jpg name\n")
def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
# Valid PNG headers (IHDR) followed by the start of the pixel data only (the decoder needs an IDAT to report
# the size): one claims 100000x100000 RGB pixels.
def header_only(name, width, height):
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(bytes(64))
    open(name, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
header_only("huge_header.png", 100000, 100000)
header_only("thin_header.png", 20000, 1)  # within the pixel limit, but 20000:1
# What OpenCV makes of them: cv2.imread(IMREAD_COLOR) (BGR, alpha dropped, grey copied, EXIF orientation applied),
# and cv2.cvtColor(BGR2GRAY) for color: gray.
import cv2
for name in ["photo.png", "photo.bmp", "photo.webp", "photo.jpg", "photo_gray.png", "photo_rgba.png", "photo_palette.png",
             "oriented_6.jpg", "jpeg_inside.png"]:
    np.save("cv2_" + name.replace(".", "_") + ".npy", cv2.imread(name, cv2.IMREAD_COLOR))
np.save("cv2_photo_jpg_gray.npy", cv2.cvtColor(cv2.imread("photo.jpg", cv2.IMREAD_COLOR), cv2.COLOR_BGR2GRAY))
