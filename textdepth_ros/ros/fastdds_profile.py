"""A Fast DDS profile with a 32 MB shared-memory segment for multi-MB images and clouds.

With the default (small) segment, 480x640 images and clouds between processes had
0.5-3 s latency outliers on this machine; a 32 MB segment removed them
(docs/node.md, 'Large images'). UDP stays enabled so other hosts can still be reached.
The profile is written once to ROS_HOME (or the temp dir) and named by
FASTDDS_DEFAULT_PROFILES_FILE, unless the user already set that variable.
"""
import os
import tempfile
from pathlib import Path

SEGMENT_BYTES = 32 * 1024 * 1024

PROFILE_XML = f"""<?xml version="1.0" encoding="UTF-8" ?>
<profiles xmlns="http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles">
  <transport_descriptors>
    <transport_descriptor>
      <transport_id>textdepth_shm</transport_id>
      <type>SHM</type>
      <segment_size>{SEGMENT_BYTES}</segment_size>
    </transport_descriptor>
    <transport_descriptor>
      <transport_id>textdepth_udp</transport_id>
      <type>UDPv4</type>
    </transport_descriptor>
  </transport_descriptors>
  <participant profile_name="textdepth_shm_participant" is_default_profile="true">
    <rtps>
      <userTransports>
        <transport_id>textdepth_shm</transport_id>
        <transport_id>textdepth_udp</transport_id>
      </userTransports>
      <useBuiltinTransports>false</useBuiltinTransports>
    </rtps>
  </participant>
</profiles>
"""

ENV_VAR = "FASTDDS_DEFAULT_PROFILES_FILE"


def profile_path() -> Path:
    base = Path(os.environ.get("ROS_HOME") or tempfile.gettempdir())
    return base / "textdepth_fastdds_shm.xml"


def use_shm_profile(environ=os.environ) -> str:
    """Point Fast DDS at the shared-memory profile unless the user chose one. Call
    before rclpy.init. Returns the profile file in effect."""
    if environ.get(ENV_VAR):
        return environ[ENV_VAR]
    path = profile_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file() or path.read_text() != PROFILE_XML:
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(PROFILE_XML)
            os.replace(tmp, path)  # atomic: concurrent starters never read half a file
    except OSError:
        return ""  # read-only home: Fast DDS defaults still work, just with outliers
    environ[ENV_VAR] = str(path)
    return str(path)
