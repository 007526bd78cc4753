"""This package's Python `logging` records (inference.py warns through it) go to the
node's ROS logger: printed once, in the ROS format, and published on /rosout."""
import logging

PACKAGE_LOGGER = "textdepth_ros"


class RosLogHandler(logging.Handler):
    def __init__(self, ros_logger):
        super().__init__()
        self._ros = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        message = self.format(record)
        if record.levelno >= logging.ERROR:
            self._ros.error(message)
        elif record.levelno >= logging.WARNING:
            self._ros.warning(message)
        elif record.levelno >= logging.INFO:
            self._ros.info(message)
        else:
            self._ros.debug(message)


def forward_package_logging(ros_logger) -> None:
    logger = logging.getLogger(PACKAGE_LOGGER)
    logger.handlers = [h for h in logger.handlers if not isinstance(h, RosLogHandler)]
    logger.addHandler(RosLogHandler(ros_logger))
    logger.setLevel(logging.INFO)
    logger.propagate = False  # no second copy through the root logger's last-resort handler
