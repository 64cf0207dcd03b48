"""Django Channels: Django for HTTP, two ``AsyncWebsocketConsumer`` routes for WebSockets."""

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="refserver-framework-findings",
    ALLOWED_HOSTS=["127.0.0.1"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=["channels"],
    MIDDLEWARE=[],
    DATABASES={},
)
django.setup()

from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.core.asgi import get_asgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402

from frameworks import seen  # noqa: E402


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse("hello", content_type="text/plain")


urlpatterns = [path("", hello)]


class Echo(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data)

    async def disconnect(self, code):
        seen.closed(code)


class Late(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await seen.late_send(lambda: self.send(text_data="late"))


app = ProtocolTypeRouter(
    {
        "http": get_asgi_application(),
        "websocket": URLRouter([path("echo", Echo.as_asgi()), path("late", Late.as_asgi())]),
    }
)
