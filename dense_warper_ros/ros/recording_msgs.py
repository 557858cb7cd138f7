"""Recording -> the messages a real rig publishes: per camera image_raw (or image_raw/compressed)
+ camera_info in its optical frame, /tf_static world <- optical, and a ground-truth topic."""
from __future__ import annotations

import cv2
import numpy as np
from geometry_msgs.msg import TransformStamped
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from tf2_msgs.msg import TFMessage

from dense_warper_ros.data.recording import Recording
from dense_warper_ros.images import encode_raw
from dense_warper_ros.pipeline import PoseResult
from dense_warper_ros.ros.conversions import camera_to_info, ns_to_stamp, skeletons_to_msg
from dense_warper_ros.transforms import matrix_to_quat

GROUND_TRUTH_TOPIC = "/ground_truth/skeletons"
GROUND_TRUTH_NOTE = "dense_warper_ros/ground_truth"     # bag metadata key: what that topic holds


def image_topic(name: str, compressed: bool) -> str:
    return f"/{name}/image_raw" + ("/compressed" if compressed else "")


def info_topic(name: str) -> str:
    return f"/{name}/camera_info"


def tf_static(rec: Recording, stamp_ns: int = 0) -> TFMessage:
    msg = TFMessage()
    for i, cam in enumerate(rec.cameras):
        tf = TransformStamped()
        tf.header.stamp = ns_to_stamp(stamp_ns)
        tf.header.frame_id = rec.world_frame
        tf.child_frame_id = rec.frame_id(i)
        R_wc, p = cam.R.T, cam.centre                     # world <- optical
        tf.transform.translation.x, tf.transform.translation.y, tf.transform.translation.z = map(float, p)
        q = matrix_to_quat(R_wc)
        rot = tf.transform.rotation
        rot.x, rot.y, rot.z, rot.w = map(float, q)
        msg.transforms.append(tf)
    return msg


def camera_info(rec: Recording, i: int, stamp_ns: int) -> CameraInfo:
    return camera_to_info(rec.cameras[i], CameraInfo, frame_id=rec.frame_id(i), stamp_ns=stamp_ns)


def image(rec: Recording, i: int, stamp_ns: int, rgb: np.ndarray, *, compressed: bool, quality: int = 90):
    if compressed:
        msg = CompressedImage(format="jpeg")
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        msg.data = buf.tobytes()
    else:
        data, step = encode_raw(rgb, "rgb8")
        msg = Image(height=rgb.shape[0], width=rgb.shape[1], encoding="rgb8", step=step, is_bigendian=0)
        msg.data = data
    msg.header.stamp = ns_to_stamp(stamp_ns)
    msg.header.frame_id = rec.frame_id(i)
    return msg


def ground_truth(rec: Recording, stamp_ns: int, points: np.ndarray):
    J = len(points)
    r = PoseResult(stamp_ns=stamp_ns, points=points, confidence=np.ones(J), covariance=np.zeros((J, 3, 3)),
                   num_views=np.zeros(J, dtype=np.int64), view_stamps_ns=(), view_frame_ids=())
    return skeletons_to_msg([r], frame_id=rec.world_frame, stamp_ns=stamp_ns)
