FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
ENV WEIR_DATA_DIR=/data PYTHONUNBUFFERED=1
VOLUME /data
EXPOSE 8443 8444
CMD ["python", "manage.py", "serve", "--bind", "0.0.0.0:8443"]
